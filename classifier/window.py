"""The bounded part of a long text the classifier reads: its head and its tail.

Keyword rules, char n-grams and the static token table read every character, so a pasted document would cost
time in proportion to its length; MiniLM reads only 256 tokens anyway. The head holds the instruction
("Summarize this:"), the tail a question asked after the pasted text.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

__all__ = ["HEAD_CHARS", "INVISIBLE", "TAIL_CHARS", "invisible_run", "window"]

HEAD_CHARS = 1_500
"""Characters read from the start of a long text."""
TAIL_CHARS = 500
"""Characters read from the end of a long text (a question after a pasted document)."""
INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
"""Unicode categories that show nothing: control, format (zero-width, BOM), and space characters."""


@functools.cache
def invisible_run() -> re.Pattern[str]:
    """A run of code points in the `INVISIBLE` categories, built on first need (about 0.1 s), so that a long run
    of NULs or zero-width spaces is read by the regex engine rather than looked up one character at a time."""
    chars = "".join(chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in INVISIBLE)
    return re.compile(f"[{re.escape(chars)}]*")


def window(text: str, head: int = HEAD_CHARS, tail: int = TAIL_CHARS) -> str:
    """`text` itself when short; otherwise its first `head` and last `tail` characters, joined by a newline
    (after invisible characters at either end are cut: spaces, zero-width characters, controls, so that padding
    cannot push the words out of the window)."""
    if len(text) <= head + tail:
        return text
    text = _trim(text)
    if len(text) <= head + tail:
        return text
    return text[:head] + "\n" + (text[-tail:] if tail else "")


def _trim(text: str) -> str:
    """`text` without the invisible characters at its ends (in linear time: the end is read reversed)."""
    text = text.strip()  # whitespace at C speed; the rest only when an end is still invisible
    if not text or (unicodedata.category(text[0]) not in INVISIBLE and unicodedata.category(text[-1]) not in INVISIBLE):
        return text
    start = invisible_run().match(text).end()  # type: ignore[union-attr]  # `*` matches the empty string too
    end = len(text) - invisible_run().match(text[::-1]).end()  # type: ignore[union-attr]
    return text[start:end] if start < end else ""
