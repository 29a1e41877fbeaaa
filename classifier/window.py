"""The bounded part of a long text the classifier reads: its head and its tail.

Keyword rules, char n-grams and the static token table read every character, so a pasted document would cost
time in proportion to its length; MiniLM reads only 256 tokens anyway. The head holds the instruction
("Summarize this:"), the tail a question asked after the pasted text.
"""

from __future__ import annotations

__all__ = ["HEAD_CHARS", "TAIL_CHARS", "window"]

HEAD_CHARS = 1_500
"""Characters read from the start of a long text."""
TAIL_CHARS = 500
"""Characters read from the end of a long text (a question after a pasted document)."""


def window(text: str, head: int = HEAD_CHARS, tail: int = TAIL_CHARS) -> str:
    """`text` itself when short; otherwise its first `head` and last `tail` characters, joined by a newline
    (after spaces at either end are cut, so that padding cannot push the words out of the window)."""
    if len(text) <= head + tail:
        return text
    text = text.strip()
    if len(text) <= head + tail:
        return text
    return text[:head] + "\n" + (text[-tail:] if tail else "")
