"""Write a file whole or not at all: into a temporary file beside it, then renamed over it."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["replaced"]


@contextlib.contextmanager
def replaced(
    target: str | Path, *, permissions: int | None = None, mode_of: str | Path | None = None
) -> Iterator[IO[str]]:
    """A text file (UTF-8) open for writing that takes `target`'s place when the block ends without an error
    (flushed and fsynced first); an error part-way leaves `target` as it was and no temporary file.

    The new file is private (0600, as `mkstemp` makes it) unless `permissions` gives its mode or `mode_of` names
    a file whose mode it copies.
    """
    target = Path(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if mode_of is not None:
            shutil.copymode(mode_of, tmp)
        elif permissions is not None:
            os.chmod(tmp, permissions)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
