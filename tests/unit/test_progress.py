"""Progress bars: often on a terminal, a line every few seconds at most in a log."""

import io
import sys

from classifier.progress import LOG_INTERVAL_S, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_in_a_log_a_bar_writes_every_few_seconds_at_most(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    bar = progress_bar(total=1000, desc="embedding", unit="q")
    try:
        assert bar.mininterval >= LOG_INTERVAL_S >= 1
        for _ in range(1000):
            bar.update(1)  # a thousand quick updates within one interval
    finally:
        bar.close()
    assert sys.stderr.getvalue().count("\r") + sys.stderr.getvalue().count("\n") <= 3  # first, last, close


def test_on_a_terminal_a_bar_redraws_often(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    bar = progress_bar(total=10, desc="embedding", unit="q")
    try:
        assert bar.mininterval < 1
    finally:
        bar.close()
