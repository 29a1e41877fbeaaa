"""One way to show progress: a tqdm bar that redraws often on a terminal and writes a line every few seconds at
most in a log (CI, `nohup`, a file), so a long step neither stays silent nor floods the log with one line per batch."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["LOG_INTERVAL_S", "progress_bar"]

LOG_INTERVAL_S = 5.0
"""Seconds between a bar's lines when standard error is not a terminal."""


def progress_bar(*, total: int, desc: str, unit: str, disable: bool = False) -> Any:
    """A `tqdm` bar on standard error: every 0.1 s on a terminal, every LOG_INTERVAL_S seconds in a log."""
    from tqdm.auto import tqdm

    terminal = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=disable,
        mininterval=0.1 if terminal else LOG_INTERVAL_S,
        maxinterval=LOG_INTERVAL_S * 2,
    )
