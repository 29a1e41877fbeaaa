"""Out of scope: a query far from every training example goes to a fallback label instead of the nearest label.

A head always names one of its labels, often with high confidence, even for a query that fits none of them
("Integrate x^2 sin x" for a model of `legal`, `sql` and `chitchat`). Scope reads how close a query's MiniLM
vector is to the training examples: the mean cosine similarity of its `k` nearest ones. Below the threshold,
the query is out of scope.

Its `k` and threshold are chosen from the training rows alone (`classifier.training.fit_scope`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Scope", "top_k_similarity"]

_CHUNK = 1024


@dataclass(frozen=True)
class Scope:
    """The trained scope check: mean similarity to the `k` nearest examples, out of scope below `threshold`.

    `target` is the share of held-out in-scope rows allowed below it; `auc` the separation each candidate k
    measured; `pseudo_out_of_scope_caught` the share of leave-one-label-out rows the threshold catches."""

    k: int
    threshold: float
    target: float
    auc: dict[str, float]
    pseudo_out_of_scope_caught: float

    def similarity(self, vectors: np.ndarray, examples: np.ndarray) -> np.ndarray:
        """Each query vector's mean cosine similarity to its `k` nearest `examples` (unit vectors, one per row)."""
        return top_k_similarity(vectors, examples, (self.k,))[self.k]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Scope:
        return cls(
            k=int(d["k"]),
            threshold=float(d["threshold"]),
            target=float(d["target"]),
            auc={str(k): float(v) for k, v in d.get("auc", {}).items()},
            pseudo_out_of_scope_caught=float(d.get("pseudo_out_of_scope_caught", float("nan"))),
        )


def top_k_similarity(vectors: np.ndarray, examples: np.ndarray, ks: Sequence[int]) -> dict[int, np.ndarray]:
    """For each k of `ks`: every row of `vectors`' mean cosine similarity to its k nearest rows of `examples`
    (fewer when there are fewer examples). Read in chunks, so memory stays bounded."""
    q = np.asarray(vectors, dtype=np.float32)
    ref = np.asarray(examples, dtype=np.float32)
    if len(ref) == 0:
        raise ValueError("no examples to compare with")
    top = min(max(ks), len(ref))
    out = {k: np.empty(len(q), dtype=np.float32) for k in ks}
    for start in range(0, len(q), _CHUNK):
        sims = q[start : start + _CHUNK] @ ref.T
        best = -np.sort(-np.partition(sims, len(ref) - top, axis=1)[:, len(ref) - top :], axis=1)
        for k in ks:
            out[k][start : start + _CHUNK] = best[:, : min(k, top)].mean(axis=1)
    return out
