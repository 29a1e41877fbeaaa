"""JSON read strictly: a repeated key or nesting too deep is an error, never a silent choice or a crash."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["loads"]


def loads(text: str | bytes) -> Any:
    """`json.loads`, refusing a key repeated within one object (plain `json` keeps the last silently) and
    nesting too deep to parse (plain `json` raises RecursionError). Every failure is a ValueError."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj: dict[str, object] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"key {key!r} is repeated")
        obj[key] = value
    return obj
