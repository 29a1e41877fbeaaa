"""Save and load a `TaskClassifier` as a directory: `manifest.json` plus arrays, never pickle.

Loading checks, before any array is read: the manifest parses and has this format and kind, every listed
file exists with its recorded size and sha256, and no unlisted file sits beside them. Arrays are then read
with `allow_pickle=False` and their shapes checked against the manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import platform
from pathlib import Path
from typing import Any

import numpy as np

from .embedding import EMBEDDER_DIM, EMBEDDER_ID
from .errors import ModelFileError

__all__ = ["DEFAULT_MODEL_DIR", "FORMAT_VERSION", "load_manifest", "load_model", "load_static_head", "save_model"]

FORMAT_VERSION = 2
"""Version 2 adds `params.static_features` (a head reading static vectors too); a head without it is still
written as version 1, so older taskrouter releases keep reading it."""
READABLE_VERSIONS = (1, 2)
KIND = "taskrouter.TaskClassifier"
DEFAULT_MODEL_DIR = Path(__file__).parent / "model"
MANIFEST = "manifest.json"
_MAX_MANIFEST_BYTES = 20_000_000
_PARAMS = ("C", "lexical_weight", "n_features", "cv", "random_state", "max_iter", "static_features")
_PARAM_DEFAULTS = {"static_features": False}  # models saved before a parameter existed
_MODEL_FILES = {"weights.npz", "examples.npz", "examples.json", "static.npz"}
STATIC_PROBES = ("integrate x^2 from 0 to 3", "fix this python error: KeyError 'id'",
                 "write a haiku about the sea", "what time is it in Tokyo?", "Explique la photosynthèse",
                 "SELECT name FROM users WHERE age > 30", "a short story about a robot who learns to paint",
                 "best hiking boots for wet weather")
"""Texts embedded by the static table at training time, saved with its head and compared at load."""
MIN_PROBE_COSINE = 0.999


def save_model(clf, directory: str | Path, *, static=None, **extra: Any) -> Path:
    """Write `clf` to `directory` (created if needed); `extra` goes into the manifest as is.

    `static` is an optional second head over the static embedder, fitted on the same data (same labels and
    n-gram weights); its weights go to `static.npz`.
    """
    clf._check_fitted()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    blobs = {
        "weights.npz": _npz(coef=clf.coef_, intercept=clf.intercept_, idf=clf.lexical_.idf_),
        "examples.npz": _npz(embeddings=clf.example_embeddings_),
        "examples.json": json.dumps({"texts": clf.example_texts_, "labels": clf.example_labels_},
                                    ensure_ascii=False).encode(),
    }
    if static is not None:
        static._check_fitted()
        from .static_embedding import STATIC_ID

        if (static.classes_.tolist() != clf.classes_.tolist()
                or static.coef_.shape != (clf.coef_.shape[0], EMBEDDER_DIM + clf.lexical_.n_features)
                or static.lexical_.ngram_range != clf.lexical_.ngram_range
                or not np.array_equal(static.lexical_.idf_, clf.lexical_.idf_)):
            raise ValueError("the static head must be fitted on the same data and features as the main head")
        if static._embedder().id != STATIC_ID:
            raise ValueError(f"the static head must embed with {STATIC_ID}, not {static._embedder().id}")
        # The token table is derived on each machine, not shipped: keep what it gave for a few probes, so a load can
        # tell whether this machine's table is the one the head was trained on.
        probes = static._embedder().encode(list(STATIC_PROBES), progress=False)
        blobs["static.npz"] = _npz(coef=static.coef_, intercept=static.intercept_, probes=probes)
        extra["static_head"] = {"embedder": {"id": static._embedder().id, "dim": static._embedder().dim},
                                "lexical_weight": static.lexical_weight,
                                "calibration": {"method": "temperature", "temperature": static.temperature_}}
    elif clf.static_features:
        raise ValueError("a head with static_features is saved with its static head, whose probes check the table: "
                         "clf.save(directory, static=static_head)")
    manifest = {
        "format_version": FORMAT_VERSION if clf.static_features else 1,
        "kind": KIND,
        "labels": clf.classes_.tolist(),
        "embedder": {"id": EMBEDDER_ID, "dim": EMBEDDER_DIM},
        "params": {k: getattr(clf, k) for k in _PARAMS},
        "lexical": {"analyzer": "char_wb", "ngram_range": list(clf.lexical_.ngram_range)},
        "calibration": {"method": "temperature", "temperature": clf.temperature_},
        "versions": _versions(),
        **extra,
        "files": {name: {"sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)} for name, b in blobs.items()},
    }
    for name in _MODEL_FILES - set(blobs):
        (out / name).unlink(missing_ok=True)  # e.g. static.npz of an earlier save: unlisted files are refused
    for name, b in blobs.items():
        (out / name).write_bytes(b)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def load_manifest(directory: str | Path | None = None) -> tuple[Path, dict]:
    """Read and verify a model directory's manifest and file hashes; return (directory, manifest)."""
    d = Path(directory) if directory is not None else DEFAULT_MODEL_DIR
    where = str(d)
    if not d.is_dir():
        raise ModelFileError("not a model directory", path=where)
    mpath = d / MANIFEST
    if not mpath.is_file():
        raise ModelFileError(f"no {MANIFEST}: not a taskrouter model", path=where)
    raw = mpath.read_bytes()
    if len(raw) > _MAX_MANIFEST_BYTES:
        raise ModelFileError(f"{MANIFEST} is implausibly large ({len(raw)} bytes)", path=where)
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{MANIFEST} is not valid JSON ({exc})", path=where) from None
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        raise ModelFileError(f"{MANIFEST} is not a {KIND} manifest", path=where)
    if manifest.get("format_version") not in READABLE_VERSIONS:
        raise ModelFileError(f"format_version {manifest.get('format_version')!r} is not supported "
                             f"(this taskrouter reads {' and '.join(map(str, READABLE_VERSIONS))})", path=where)
    emb = manifest.get("embedder") or {}
    if emb.get("id") != EMBEDDER_ID or emb.get("dim") != EMBEDDER_DIM:
        raise ModelFileError(f"trained with embedder {emb!r}, expected {EMBEDDER_ID} ({EMBEDDER_DIM})", path=where)
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ModelFileError("manifest lists no files", path=where)
    present = {p.name for p in d.iterdir() if p.is_file()} - {MANIFEST}
    foreign = sorted(present - set(files))
    if foreign:
        raise ModelFileError(f"files not listed in the manifest: {foreign}", path=where)
    for name, meta in files.items():
        p = d / name
        if "/" in name or "\\" in name or not p.is_file():
            raise ModelFileError(f"missing file {name!r}", path=where)
        data = p.read_bytes()
        if len(data) != meta.get("bytes"):
            raise ModelFileError(f"{name}: size {len(data)} != {meta.get('bytes')} (truncated?)", path=where)
        if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            raise ModelFileError(f"{name}: sha256 mismatch (file modified)", path=where)
    return d, manifest


def load_static_head(directory: str | Path | None, manifest: dict, main):
    """The static-embedding head saved next to `main` (verified by `load_manifest` already), or None.

    None too, with a warning, when its token table is neither cached nor buildable here (no model2vec/torch) or
    is not the table the head was trained on: the cascade then works without its static stage. (A `main` head
    that reads static vectors itself was loaded only after its table passed the same checks.)
    """
    from .head import LinearHead

    if manifest.get("static_head") is None:
        return None
    d = Path(directory) if directory is not None else DEFAULT_MODEL_DIR
    weights, temperature, lexical_weight = _static_section(d, manifest, main)
    embedder = getattr(main, "static_embedder_", None)
    if embedder is None:
        embedder, why = _static_embedder(d, weights["probes"])
        if embedder is None:
            logging.getLogger("taskrouter.embedding").warning("static stage off: %s", why)
            return None
    head = LinearHead(lexical_weight=lexical_weight, embedder=embedder)
    head.classes_, head.temperature_ = main.classes_, temperature
    head.coef_, head.intercept_ = weights["coef"], weights["intercept"]
    head.lexical_ = main.lexical_
    return head


def _static_section(d: Path, manifest: dict, main) -> tuple[dict[str, np.ndarray], float, float]:
    """The static head's checked arrays (coef, intercept, probes), temperature and lexical weight."""
    from .static_embedding import STATIC_ID

    where = str(d)
    section = manifest.get("static_head")
    try:
        emb = section["embedder"]
        temperature = float(section["calibration"]["temperature"])
        lexical_weight = float(section["lexical_weight"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"static_head section incomplete ({exc!r})", path=where) from None
    if emb != {"id": STATIC_ID, "dim": EMBEDDER_DIM}:
        raise ModelFileError(f"static head trained with embedder {emb!r}, expected {STATIC_ID}", path=where)
    if "static.npz" not in manifest.get("files", {}):
        raise ModelFileError("static_head without a listed static.npz", path=where)
    weights = _load_npz(d, "static.npz", manifest)
    coef, intercept = weights.get("coef"), weights.get("intercept")
    shape = (main.coef_.shape[0], EMBEDDER_DIM + main.lexical_.n_features)
    if coef is None or coef.shape != shape or intercept is None or intercept.shape != main.intercept_.shape:
        raise ModelFileError("inconsistent model: static head shape", path=where)
    if not temperature > 0:
        raise ModelFileError("inconsistent model: static head temperature", path=where)
    probes = weights.get("probes")
    if probes is None or probes.shape != (len(STATIC_PROBES), EMBEDDER_DIM):
        raise ModelFileError("inconsistent model: static head probes", path=where)
    return weights, temperature, lexical_weight


def _static_embedder(d: Path, probes: np.ndarray):
    """(this machine's static embedder, None) when its table can be had and agrees with the saved probe vectors;
    else (None, why)."""
    from .static_embedding import StaticMiniLMEmbedder, available

    if not available():
        return None, ("its token table is not cached and model2vec/torch are not installed to build it: build it "
                      "where they are with `python -m classifier.static_embedding`")
    embedder = StaticMiniLMEmbedder()
    try:
        # Now, so a table that cannot be built or verified is known at load, not at the first query.
        here = embedder.load().encode(list(STATIC_PROBES), progress=False)
    except (ModelFileError, OSError, ValueError) as exc:
        return None, str(exc)
    agreement = float(np.min(np.sum(here * probes, axis=1)))  # both sides are unit vectors
    if agreement < MIN_PROBE_COSINE:
        return None, (f"this machine's token table is not the one the head was trained on (probe cosine "
                      f"{agreement:.4f} < {MIN_PROBE_COSINE}); retrain, or rebuild the table with the training "
                      f"versions")
    return embedder, None


def load_model(directory: str | Path | None = None, *, serving: bool = False):
    """Verify, then rebuild a fitted `TaskClassifier`; returns (classifier, manifest).

    With `serving=True` it is a `LinearHead` instead: the same predictions without importing scikit-learn.
    """
    from .features import LexicalFeatures

    d, manifest = load_manifest(directory)
    where = str(d)
    labels = manifest.get("labels")
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) for x in labels):
        raise ModelFileError("labels must be a list of at least 2 strings", path=where)
    params = manifest.get("params") or {}
    weights = _load_npz(d, "weights.npz", manifest)
    examples = _load_npz(d, "examples.npz", manifest)
    try:
        ex = json.loads(_verified_bytes(d, "examples.json", manifest).decode("utf-8"))
        texts, ex_labels = list(ex["texts"]), list(ex["labels"])
        if serving:
            from .head import LinearHead

            clf = LinearHead(lexical_weight=float(params["lexical_weight"]),
                             static_features=params.get("static_features", False))
            n_features = int(params["n_features"])
        else:
            from .estimator import TaskClassifier

            clf = TaskClassifier(**{k: params[k] if k in params else _PARAM_DEFAULTS[k] for k in _PARAMS})
            n_features = clf.n_features
        temperature = float(manifest["calibration"]["temperature"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"manifest or examples incomplete ({exc!r})", path=where) from None
    if not isinstance(clf.static_features, bool):
        raise ModelFileError(f"params.static_features must be true or false, got {clf.static_features!r}",
                             path=where)
    if clf.static_features and manifest["format_version"] < 2:
        raise ModelFileError("params.static_features needs format_version 2", path=where)
    k, n_feat = len(labels), EMBEDDER_DIM * (2 if clf.static_features else 1) + n_features
    coef, intercept, idf = weights.get("coef"), weights.get("intercept"), weights.get("idf")
    emb = examples.get("embeddings")
    rows = 1 if k == 2 else k
    checks = [
        (coef is not None and coef.shape == (rows, n_feat), "coef shape"),
        (intercept is not None and intercept.shape == (rows,), "intercept shape"),
        (idf is not None and idf.shape == (n_features,), "idf shape"),
        (emb is not None and emb.shape == (len(texts), EMBEDDER_DIM), "examples shape"),
        (len(texts) == len(ex_labels), "examples length"),
        (temperature > 0, "temperature"),
    ]
    for ok, what in checks:
        if not ok:
            raise ModelFileError(f"inconsistent model: {what}", path=where)
    lexical = LexicalFeatures(n_features=n_features, ngram_range=tuple(manifest["lexical"]["ngram_range"]))
    lexical.idf_ = idf
    clf.classes_ = np.array(labels)
    clf.coef_, clf.intercept_, clf.lexical_, clf.temperature_ = coef, intercept, lexical, temperature
    clf.n_features_in_ = n_feat
    clf.example_texts_, clf.example_labels_, clf.example_embeddings_ = texts, ex_labels, emb
    if clf.static_features:  # the head cannot read a query without this machine's table: check it now
        if manifest.get("static_head") is None:
            raise ModelFileError("inconsistent model: static_features without a static head", path=where)
        weights = _static_section(d, manifest, clf)[0]
        clf.static_embedder_, why = _static_embedder(d, weights["probes"])
        if clf.static_embedder_ is None:
            raise ModelFileError(f"this model's MiniLM head reads static vectors, but {why}; or use a model "
                                 f"trained with --no-static-features", path=where)
    return clf, manifest


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _verified_bytes(d: Path, name: str, manifest: dict) -> bytes:
    """The bytes of `name`, read once and checked against the manifest: what is parsed is what was hashed."""
    meta = (manifest.get("files") or {}).get(name) or {}
    data = (d / name).read_bytes()
    if len(data) != meta.get("bytes") or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise ModelFileError(f"{name}: does not match the manifest (modified while loading?)", path=str(d))
    return data


def _load_npz(d: Path, name: str, manifest: dict) -> dict[str, np.ndarray]:
    data = _verified_bytes(d, name, manifest)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # zip, format or object-array errors: the file is not ours
        raise ModelFileError(f"{name}: unreadable array file ({type(exc).__name__})", path=str(d)) from None


def _versions() -> dict[str, str]:
    from .filecache import package_versions

    return {"python": platform.python_version(),
            **package_versions("taskrouter", "scikit-learn", "numpy", "sentence-transformers", "torch", "model2vec")}
