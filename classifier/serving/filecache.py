"""Files derived from the bundled model once and cached on disk, each used only when its sha256 record matches.

    $TASKROUTER_CACHE/<kind>/<key>/<file>         default root: $XDG_CACHE_HOME/taskrouter or ~/.cache/taskrouter
    $TASKROUTER_CACHE/<kind>/<key>/<file>.json    {"format", "file", "sha256", "bytes", ...what it was made from}

Builds write a temporary file and rename it into place under an inter-process lock, so concurrent processes
never read half a file. Recipes that need torch run in a child process (`run_child`), so a server never pays
torch's import time or memory. Used by `onnx_export` (the ONNX export), `onnx_int8` (its int8 variant) and
`static_embedding` (the distilled token table).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..atomic import replaced
from ..errors import ModelFileError
from ..integrity import bytes_problem

__all__ = [
    "RECORD_FORMAT",
    "bundled_model_key",
    "cache_root",
    "get_or_build",
    "locked",
    "make_file",
    "is_installed",
    "package_versions",
    "read_verified",
    "run_child",
    "run_with_torch",
]

RECORD_FORMAT = 1
log = logging.getLogger("taskrouter.embedding")


def cache_root() -> Path:
    """`$TASKROUTER_CACHE`, else `$XDG_CACHE_HOME/taskrouter`, else `~/.cache/taskrouter`."""
    base = os.environ.get("TASKROUTER_CACHE")
    if not base:
        base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "taskrouter")
    return Path(base)


def bundled_model_key(d: Path, recipe: dict, files: tuple[str, ...]) -> str:
    """A short key for what a cached file is derived from: `recipe` and the model directory `d`'s `files` and
    weights."""
    h = hashlib.sha256(json.dumps(recipe).encode())
    for name in files:
        h.update(name.encode() + b"\0" + (d / name).read_bytes())
    weights = (d / "model.safetensors").stat()  # 90 MB: identified by size and mtime, not hashed on every start
    h.update(f"model.safetensors\0{weights.st_size}\0{weights.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def is_installed(module: str) -> bool:
    """`module` can be imported here (False also where it is set to None in sys.modules, i.e. blocked)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def package_versions(*dists: str) -> dict[str, str]:
    """The installed version of each of `dists` that is installed."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in dists:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def read_verified(path: Path, kind: str) -> tuple[str, bytes]:
    """("ok", bytes) when the file matches its record of `kind`; otherwise (what is wrong, b"")."""
    record_path = path.with_name(path.name + ".json")
    if not path.exists() and not record_path.exists():
        return "missing", b""
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        data = path.read_bytes()
    except FileNotFoundError as exc:
        return f"{Path(exc.filename or '?').name} is missing", b""
    except (OSError, ValueError) as exc:
        return f"unreadable ({type(exc).__name__})", b""
    # Records written before "kind" existed were all ONNX records.
    if (
        not isinstance(record, dict)
        or record.get("format") != RECORD_FORMAT
        or record.get("file") != path.name
        or record.get("kind", "ONNX") != kind
    ):
        return f"its record is not a taskrouter {kind} record", b""
    problem = bytes_problem(data, record.get("sha256"), record.get("bytes"))
    return ("ok", data) if problem is None else (problem, b"")


def get_or_build(
    path: Path,
    kind: str,
    produce: Callable[[Path], None],
    record: Callable[[], dict],
    *,
    allow_build: bool = True,
    hint: str,
    prepare: Callable[[], None] | None = None,
) -> bytes:
    """The verified bytes of the cached file at `path`, made first by `produce(temp_path)` when missing or bad.

    Under an inter-process lock, rechecked after taking it (another process may have built it meanwhile);
    `record()` gives what the file was made from. `prepare()` runs before the lock, e.g. to build a file this
    one is derived from (the lock is not re-entrant). Without `allow_build`, a missing or bad file is a
    `ModelFileError` that says how to build it (`hint`).
    """
    status, data = read_verified(path, kind)
    if status == "ok":
        return data
    if status != "missing" and path.parent.is_dir():
        with locked(path.parent / ".lock"):  # another process may be between its file's rename and its record's
            status, data = read_verified(path, kind)
        if status == "ok":
            return data
    if not allow_build:
        raise ModelFileError(f"{status}; build it with `{hint}`", path=str(path))
    if status != "missing":
        log.warning("%s: %s; rebuilding it", path, status)
    if prepare is not None:
        prepare()
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path.parent / ".lock"):
        status, data = read_verified(path, kind)
        if status != "ok":
            make_file(path, produce, kind, **record())
            status, data = read_verified(path, kind)
    if status != "ok":
        raise ModelFileError(f"the freshly built file failed verification ({status})", path=str(path))
    return data


def make_file(path: Path, produce: Callable[[Path], None], kind: str, **record: object) -> None:
    """Run `produce(temp_path)`, then move the file and its record (plus `record`) into place atomically."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        start = time.perf_counter()
        produce(tmp)
        logging.getLogger("taskrouter.embedding").info("%s built in %.0f s", kind, time.perf_counter() - start)
        data = tmp.read_bytes()
        full = {
            "format": RECORD_FORMAT,
            "kind": kind,
            "file": path.name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "source_key": path.parent.name,
            **record,
        }
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache may be shared by the users of a machine
        _fsync(tmp)
        os.replace(tmp, path)
        with replaced(path.with_name(path.name + ".json"), permissions=0o644) as f:
            f.write(json.dumps(full, indent=2) + "\n")
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """An exclusive inter-process lock (POSIX flock; elsewhere no lock, the atomic renames still hold)."""
    with open(lock_path, "a+b") as f:
        try:
            import fcntl
        except ImportError:  # Windows
            yield
            return
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def run_with_torch(function: Callable[[Path], object], dest: Path, *, what: str) -> None:
    """`function(dest)`, which imports torch: in this process when torch is loaded already, else in a child process
    (`run_child`), so this one never pays torch's import time or memory for it."""
    if "torch" in sys.modules:
        function(dest)
    else:
        run_child(function, dest, what=what)


def run_child(function: Callable[[Path], object], dest: Path, *, what: str, timeout_s: int = 900) -> None:
    """`function(dest)` in a child Python process (`function` a module-level function of this package), with this
    package importable and hubs offline; errors become ModelFileError."""
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    call = "import importlib, sys; getattr(importlib.import_module(sys.argv[1]), sys.argv[2])(sys.argv[3])"
    cmd = [sys.executable, "-c", call, function.__module__, function.__qualname__, str(dest)]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ModelFileError(f"{what} took over {timeout_s} s", path=str(dest)) from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModelFileError(f"{what} failed (exit {done.returncode}): {tail[0]}", path=str(dest))


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())
