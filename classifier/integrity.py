"""The one check of a file's bytes against the size and sha256 recorded for it (shipped assets, cached builds,
a saved model's files)."""

from __future__ import annotations

import hashlib

from .errors import ModelFileError

__all__ = ["bytes_problem", "check_bytes"]


def bytes_problem(data: bytes, sha256: object, size: object) -> str | None:
    """What is wrong with `data` against its recorded `sha256` and `size` (in bytes), or None when it matches."""
    if len(data) != size:
        return f"size {len(data)} != recorded {size} (truncated or modified)"
    if hashlib.sha256(data).hexdigest() != sha256:
        return "sha256 does not match its record (file modified)"
    return None


def check_bytes(
    data: bytes, sha256: object, size: object, name: str, where: str | None = None, *, remedy: str = ""
) -> None:
    """Raise `ModelFileError` ("NAME: what is wrong[; REMEDY]", `.path` = `where`) unless `data` has the recorded
    `size` and `sha256`."""
    problem = bytes_problem(data, sha256, size)
    if problem is not None:
        raise ModelFileError(f"{name}: {problem}" + (f"; {remedy}" if remedy else ""), path=where)
