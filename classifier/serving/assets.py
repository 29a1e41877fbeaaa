"""The serving files shipped inside the package: everything a classification needs, with no torch.

    classifier/assets/minilm.onnx             all-MiniLM-L6-v2 with pooling and L2 norm, fused; float16 weights,
                                              float32 arithmetic
    classifier/assets/minilm-tokenizer.json   its tokenizer, truncating at sentence-transformers' 256 tokens
    classifier/assets/minilm-static.npz       the static token table distilled from it (int8 rows, a float32
                                              scale per row) and model2vec's tokenizer
    classifier/assets/minilm-tuned.onnx       the same for the encoder tuned on the training rows (`training.tune`)
    classifier/assets/minilm-tuned-static.npz and its static table; both read the same tokenizer
    classifier/assets/assets.json             each file's sha256 and size, and what it was made from

The base files depend on no training data; the tuned ones on the rows they were tuned on (`made_from`). A
model's manifest names the encoder it was trained with and its graph's sha256 (`encoder.ENCODERS`). Each file
is read only as bytes whose sha256 matches `assets.json` (`read`). `taskrouter assets build` rebuilds
them; that needs `taskrouter[train]` (torch, transformers, model2vec, onnx).
"""

from __future__ import annotations

import io
import json
from functools import cache
from pathlib import Path

import numpy as np

from ..errors import ModelFileError
from ..integrity import check_bytes
from .encoder import ENCODERS

__all__ = [
    "ASSETS_DIR",
    "FILES",
    "RECORD",
    "installed",
    "read",
    "tuned_labels",
    "read_static_table",
    "quantize_rows",
    "recorded_sha256",
]

ASSETS_DIR = Path(__file__).parents[1] / "assets"
RECORD = "assets.json"
ONNX = ENCODERS["base"].onnx_file
TOKENIZER = "minilm-tokenizer.json"
STATIC_TABLE = ENCODERS["base"].static_file
FILES = (TOKENIZER, *(f for e in ENCODERS.values() for f in (e.onnx_file, e.static_file)))


@cache
def _record(folder: Path) -> dict:
    """`assets.json` of `folder`, read once per process (`clear_record_cache()` after rewriting it)."""
    path = folder / RECORD
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError("the shipped serving files are missing; reinstall taskrouter", path=str(path)) from None
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"unreadable ({type(exc).__name__}: {exc})", path=str(path)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), dict):
        raise ModelFileError("not a taskrouter assets record (no 'files')", path=str(path))
    return doc


def _entry(name: str, folder: Path) -> dict:
    if name not in FILES:
        raise ValueError(f"The 'name' parameter must be one of {list(FILES)}. Got {name!r} instead.")
    entry = _record(folder)["files"].get(name)
    if not isinstance(entry, dict):
        raise ModelFileError(f"{RECORD} has no entry for {name}", path=str(folder / name))
    return entry


def recorded_sha256(name: str, folder: Path = ASSETS_DIR) -> str:
    """The sha256 that `assets.json` records for `name` (the file itself is checked when `read`)."""
    return str(_entry(name, folder).get("sha256"))


def read(name: str, folder: Path = ASSETS_DIR) -> bytes:
    """The bytes of the shipped file `name`, checked against its sha256 and size in `assets.json`."""
    entry = _entry(name, folder)
    path = folder / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"unreadable ({type(exc).__name__}); reinstall taskrouter", path=str(path)) from None
    check_bytes(data, entry.get("sha256"), entry.get("bytes"), name, str(folder), remedy="reinstall taskrouter")
    return data


def tuned_labels(folder: Path = ASSETS_DIR) -> list[str] | None:
    """The labels the shipped tuned encoder was tuned on (from `assets.json`), or None when there is none."""
    try:
        labels = _record(folder).get("made_from", {}).get("tuned", {}).get("tuned", {}).get("labels")
    except ModelFileError:
        return None
    return sorted(labels) if isinstance(labels, list) and installed(ENCODERS["tuned"].onnx_file, folder) else None


def installed(name: str, folder: Path = ASSETS_DIR) -> bool:
    """`assets.json` lists the shipped file `name` and the file is there (its bytes are checked when `read`)."""
    try:
        _entry(name, folder)
    except ModelFileError:
        return False
    return (folder / name).is_file()


def read_static_table(folder: Path = ASSETS_DIR, name: str = STATIC_TABLE) -> tuple[np.ndarray, str]:
    """The static table `name` as float16 rows (dequantised from int8) and its tokenizer's JSON."""
    arrays = np.load(io.BytesIO(read(name, folder)), allow_pickle=False)
    rows, scale = arrays["rows"], arrays["scale"]
    if rows.dtype != np.int8 or rows.ndim != 2 or scale.shape != (rows.shape[0],):
        raise ModelFileError(f"table arrays {rows.dtype}{rows.shape}, scale {scale.shape}", path=str(folder))
    table = (rows.astype(np.float32) * scale[:, None]).astype(np.float16)
    return table, arrays["tokenizer"].tobytes().decode("utf-8")


def quantize_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: `rows * scale[:, None]` approximates `table` (error ≤ scale / 2 per entry)."""
    table = np.asarray(table, dtype=np.float32)
    scale = np.abs(table).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    rows = np.clip(np.rint(table / scale[:, None]), -127, 127).astype(np.int8)
    return rows, scale.astype(np.float32)


def clear_record_cache() -> None:
    _record.cache_clear()
