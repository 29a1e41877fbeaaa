"""The static table's probes: texts it embeds at training time, whose vectors are saved with its head and compared
at load, so that a model is never served by a table other than the one its heads were trained on."""

from __future__ import annotations

import numpy as np

from ..errors import ModelFileError
from ..serving.encoder import Encoder

__all__ = ["MIN_PROBE_COSINE", "STATIC_PROBES", "probe_vectors", "static_embedder"]

STATIC_PROBES = (
    "integrate x^2 from 0 to 3",
    "fix this python error: KeyError 'id'",
    "write a haiku about the sea",
    "what time is it in Tokyo?",
    "Explique la photosynthèse",
    "SELECT name FROM users WHERE age > 30",
    "a short story about a robot who learns to paint",
    "best hiking boots for wet weather",
)
"""Texts embedded by the static table at training time, saved with its head and compared at load."""
MIN_PROBE_COSINE = 0.999


def probe_vectors(encoder: str) -> np.ndarray:
    """What `encoder`'s shipped static table gives for the probes (saved with the head that reads it)."""
    from ..serving.static_embedding import StaticMiniLMEmbedder

    table = StaticMiniLMEmbedder(encoder=encoder)
    return table.encode(list(STATIC_PROBES), progress=False)


def static_embedder(probes: np.ndarray, enc: Encoder):
    """(this machine's static embedder, None) when its table can be had and agrees with the saved probe vectors;
    else (None, why)."""
    from ..serving.static_embedding import StaticMiniLMEmbedder, available

    if not available(enc.name):
        return None, (
            f"the token table shipped in the package is missing (classifier/assets/{enc.static_file}): "
            "reinstall taskrouter, or rebuild it with `taskrouter assets build`"
        )
    embedder = StaticMiniLMEmbedder(encoder=enc.name)
    try:
        # Now, so a table that cannot be built or verified is known at load, not at the first query.
        here = embedder.load().encode(list(STATIC_PROBES), progress=False)
    except (ModelFileError, OSError, ValueError) as exc:
        return None, str(exc)
    probes = np.asarray(probes, dtype=np.float64)
    norms = np.linalg.norm(probes, axis=1) if probes.shape == here.shape else None
    if norms is None or not np.all(np.abs(norms - 1.0) < 1e-3):  # NaN fails too: the cosine below needs units
        return None, f"the saved probe vectors are not {len(STATIC_PROBES)} unit vectors of {here.shape[1]} numbers"
    agreement = float(np.min(np.sum(here * probes, axis=1)))
    if not agreement >= MIN_PROBE_COSINE:
        return None, (
            f"this machine's token table is not the one the head was trained on (probe cosine "
            f"{agreement:.4f} < {MIN_PROBE_COSINE}); retrain it with this taskrouter"
        )
    return embedder, None
