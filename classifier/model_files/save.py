"""Save a model as a directory: `manifest.json` plus arrays (`.npz`, never pickle), each file's sha256 and size
recorded in the manifest; `convert` rewrites a directory of an older format in this one."""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelFileError
from ..results import EMBEDDING
from ..serving.embedding import EMBEDDER_DIM
from ..serving.encoder import encoder_of
from ..serving.head import Examples, HeadExport
from ..serving.stages import StageManifest
from .load import built_in_stages, installed_sha256, load_manifest
from .manifest import (
    KIND,
    MANIFEST,
    CascadeSpec,
    EmbedderSpec,
    ExamplesSpec,
    FileRecord,
    HeadSpec,
    LexicalSpec,
    Manifest,
    StageEntry,
    is_plain_file_name,
)
from .probes import probe_vectors

__all__ = ["check_model_out", "convert", "save_model"]


def save_model(
    directory: str | Path,
    heads: Sequence[tuple[HeadSpec, HeadExport]],
    examples: Examples,
    *,
    params: dict[str, Any],
    cascade: dict | None = None,
    training: dict | None = None,
    metrics: dict | None = None,
    stages: Sequence[StageManifest] | None = None,
) -> Path:
    """Write a model directory from explicit exports (created if needed; `check_model_out` says where a model may
    go), replacing the model that was there.

    `heads` pairs each head's manifest entry (its `file`, `embedders`, threshold...) with its arrays. The
    lexical IDF and the examples' vectors go with the MiniLM ("embedding") head's file and `examples.*`.
    `stages`: the cascade's stages in order, each entry with its own files (None: the built-in stages the
    heads, rules and scope make).
    """
    out = check_model_out(directory)
    specs = [spec for spec, _ in heads]
    by_stage = {spec.stage: export for spec, export in heads}
    if EMBEDDING not in by_stage:
        raise ValueError("a model needs an embedding head")
    main = by_stage[EMBEDDING]
    blobs: dict[str, bytes] = {}
    main_id = main.embedder_ids[0]
    enc = encoder_of(main_id)
    if enc is None or enc.embedder_id != main_id:
        raise ValueError(f"the embedding head reads {main_id!r}, which is no shipped encoder's MiniLM vectors")
    embedders = {main_id: EmbedderSpec(id=main_id, dim=EMBEDDER_DIM, sha256=installed_sha256(enc.onnx_file))}
    for spec, export in heads:
        if (
            export.classes != main.classes
            or export.ngram_range != main.ngram_range
            or not np.array_equal(export.idf, main.idf)
        ):
            raise ValueError(f"the {spec.stage} head must be fitted on the same data and features as the main head")
        arrays = {"coef": export.coef, "intercept": export.intercept}
        if spec.stage == EMBEDDING:
            arrays["idf"] = export.idf
        if enc.static_id in spec.embedders and enc.static_id not in embedders:
            # Keep what the token table gave for a few probes, so a load can tell whether the installed table is
            # the one the head was trained on.
            arrays["probes"] = probe_vectors(enc.name)
            embedders[enc.static_id] = EmbedderSpec(
                id=enc.static_id, dim=EMBEDDER_DIM, probes_file=spec.file, sha256=installed_sha256(enc.static_file)
            )
        blobs[spec.file] = _npz(**arrays)
    entries = []
    for entry in stages or ():
        taken = sorted(set(entry.files) & (set(blobs) | {"examples.npz", "examples.json", MANIFEST}))
        if taken:
            raise ValueError(f"the {entry.name} stage's files {taken} clash with the model's own")
        blobs.update(entry.files)
        entries.append(StageEntry(name=entry.name, kind=entry.kind, config=entry.config, files=sorted(entry.files)))
    section = CascadeSpec(**(cascade or {}))
    section.stages = entries or built_in_stages(section, specs)
    blobs["examples.npz"] = _npz(embeddings=examples.embeddings)
    blobs["examples.json"] = json.dumps(
        {"texts": examples.texts, "labels": examples.labels}, ensure_ascii=False
    ).encode()
    manifest = Manifest(
        labels=list(main.classes),
        embedders=list(embedders.values()),
        lexical=LexicalSpec(ngram_range=main.ngram_range, n_features=len(main.idf), file=_file_of(specs, EMBEDDING)),
        heads=specs,
        examples=ExamplesSpec(embedder=main_id),
        params=params,
        cascade=section,
        versions=_versions(),
        training=training,
        metrics=metrics,
        files={name: FileRecord(sha256=hashlib.sha256(b).hexdigest(), bytes=len(b)) for name, b in blobs.items()},
    )
    _write(out, manifest, blobs)
    return out


def _file_of(specs: Sequence[HeadSpec], stage: str) -> str:
    return next(s.file for s in specs if s.stage == stage)


def check_model_out(directory: str | Path) -> Path:
    """`directory`, when a model may be written there: a new folder, an empty one, or a model folder holding only
    the files its manifest lists. Anything else is refused (`ModelFileError`), since a save replaces the folder's
    files: call it before training, so that a wrong `--out` costs nothing."""
    out = Path(directory)
    where = str(out)
    if out.exists() and not out.is_dir():
        raise ModelFileError("exists and is not a directory", path=where)
    resolved = _not_the_working_folder(out)
    existing = next((p for p in resolved.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ModelFileError(f"cannot be made: {existing} is not a directory", path=where)
    if not out.is_dir():
        return out
    files = sorted(p.name for p in out.iterdir() if not p.is_dir() or p.is_symlink())
    listed = _listed(out / MANIFEST)
    if files and listed is None:
        raise ModelFileError(
            f"holds files and no taskrouter {MANIFEST}: it is not a model folder, and saving would delete "
            f"{', '.join(files[:3])}{', ...' if len(files) > 3 else ''}; choose a new or empty folder",
            path=where,
        )
    unlisted = sorted(set(files) - {MANIFEST} - (listed or set()))
    if unlisted:
        raise ModelFileError(
            f"holds files its model does not list, which saving would delete: {', '.join(unlisted[:3])}"
            f"{', ...' if len(unlisted) > 3 else ''}; move them, or choose a new or empty folder",
            path=where,
        )
    return out


def _listed(manifest: Path) -> set[str] | None:
    """The file names a taskrouter manifest lists; None when `manifest` is missing or no taskrouter manifest (a
    web app's manifest.json is a file like any other)."""
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        return None
    files = doc.get("files")
    return {name for name in files if isinstance(name, str)} if isinstance(files, dict) else set()


def _not_the_working_folder(out: Path) -> Path:
    """`out` resolved, unless it is the folder this process runs in or one above it, which a swap would pull out
    from under it."""
    resolved = out.resolve()
    if resolved == Path.cwd() or resolved in Path.cwd().parents:
        raise ModelFileError(
            "is the folder this process runs in, or holds it: a model is written beside its folder and swapped "
            "in; name a folder of its own (e.g. --out model), or run from elsewhere",
            path=str(out),
        )
    return resolved


def _write(out: Path, manifest: Manifest, blobs: dict[str, bytes]) -> None:
    """Write the model into a fresh folder beside `out`, read it back, then put it in `out`'s place: a save that
    fails or is killed half-way leaves the model that was there whole. Folders inside `out` stay."""
    bad = sorted(name for name in blobs if not is_plain_file_name(name))
    if bad:  # a stage's own file names: `../x` or `/etc/x` would be written outside the model directory
        raise ValueError(f"model file names must be plain names inside the model directory, got {bad}")
    out = out.resolve()  # a link: replace the folder it points to and keep the link
    out.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        _put(fresh, manifest, blobs)
        load_manifest(fresh)  # every file as recorded, before the old model goes
        if not out.exists():
            os.chmod(fresh, 0o755)  # mkdtemp's folder is private (0700)
            os.rename(fresh, out)
            _sync(out.parent)
            return
        shutil.copymode(out, fresh)
        retired = out.parent / f".{out.name}.old-{fresh.name.rsplit('-', 1)[-1]}"
        os.rename(out, retired)
        try:
            os.rename(fresh, out)
        except OSError:
            os.rename(retired, out)
            raise
        _sync(out.parent)
        for p in retired.iterdir():  # a user's folders inside the model directory stay in it
            if p.is_dir() and not p.is_symlink():
                os.rename(p, out / p.name)
        shutil.rmtree(retired)
    finally:
        if fresh.exists():
            shutil.rmtree(fresh, ignore_errors=True)


def _put(folder: Path, manifest: Manifest, blobs: dict[str, bytes]) -> None:
    """Write the files into `folder`, the manifest last, each flushed to disk (then the folder itself)."""
    text = json.dumps(manifest.model_dump(mode="json", exclude_none=True), indent=2, ensure_ascii=False)
    for name, b in [*blobs.items(), (MANIFEST, (text + "\n").encode("utf-8"))]:
        with open(folder / name, "wb") as f:
            f.write(b)
            f.flush()
            os.fsync(f.fileno())
    _sync(folder)


def _sync(folder: Path) -> None:
    """Flush a folder's entries (new names, renames) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def convert(directory: str | Path) -> Path:
    """Rewrite a model directory's manifest in format 3 after loading it (no retraining, same array files)."""
    d, manifest, blobs = load_manifest(directory)
    d = check_model_out(d).resolve()  # no link or other entry beside the files that the rewrite would drop
    _write(d, manifest, blobs)
    load_manifest(d)
    return d


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub: **kwds may not fill allow_pickle
    return buf.getvalue()


def _versions() -> dict[str, str]:
    from ..serving.filecache import package_versions

    return {
        "python": platform.python_version(),
        **package_versions("taskrouter", "scikit-learn", "numpy", "onnxruntime", "tokenizers", "torch"),
    }
