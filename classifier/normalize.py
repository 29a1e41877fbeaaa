"""The folded form of a query under which two texts count as the same one: whitespace collapsed, case folded.

The review loop dedupes on it (`routing.review`). The decision cache keys on the lower-cased form instead, which is
what the stages read (`Cascade`)."""

from __future__ import annotations

__all__ = ["fold"]


def fold(text: str) -> str:
    """`text` with every run of whitespace made one space, no leading or trailing space, and case folded.

    >>> fold("  Integrate\\tX^2 ")
    'integrate x^2'
    """
    return " ".join(text.split()).casefold()
