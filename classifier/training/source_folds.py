"""Out-of-source folds: groups of sources that each hold every label from at least two sources, and a trained
cascade's scores on each.

Holding out one single-label source takes its label's whole style with it, so such a score says little about new
traffic. A fold here holds out a group of sources that together carry every label from at least
`MIN_SOURCES_PER_LABEL` sources, so every label is scored on styles the model never saw.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import product

import numpy as np
from sklearn.metrics import f1_score, recall_score

from ..data import Dataset
from ..errors import DataError
from ..serving.cascade import Cascade

__all__ = [
    "MAX_SOURCES",
    "MIN_ROWS_PER_SOURCE",
    "MIN_SOURCES_PER_LABEL",
    "FoldScore",
    "check_source_count",
    "group_sources",
    "mcnemar_p",
    "paired",
    "score_folds",
]

MIN_SOURCES_PER_LABEL = 2
MIN_ROWS_PER_SOURCE = 20
"""A source counts toward a fold's label only with at least this many rows of it."""
MAX_FOLDS = 3
MAX_SOURCES = 12
"""Sources beyond this many are too many to try every grouping of (3^12 = 531,441 splits)."""


@dataclass(frozen=True)
class FoldScore:
    """A cascade on one fold's rows, stage 3 off."""

    fold: str
    sources: tuple[str, ...]
    n: int
    macro_f1: float
    balanced_accuracy: float
    """The mean of the labels' recalls: unlike macro-F1 it does not move when the fold's label mix does, so a head
    that leans toward the fold's largest label gains nothing by it (`classifier.priors` sets the traffic's mix)."""
    oracle_macro_f1: float
    """Macro-F1 with every escalated row answered right, as `evaluate --llm oracle` scores: what escalation can
    reach with a perfect stage 3 (the errors of the rules and the static stage are never escalated)."""
    escalated: float
    static_coverage: float | None
    static_accuracy: float | None
    recall: dict[str, float]
    accuracy_by_source: dict[str, float]
    """Accuracy on each source's rows: a gain that shows in one source only is a gain on that source's style (data
    written for the kinds a fold missed raises that fold's score without saying anything about new traffic)."""
    static_threshold: float | None = None
    escalation_threshold: float | None = None
    """The thresholds the fold was scored with (`train_cascade` reads them on the other folds' rows)."""
    correct: tuple[bool, ...] = field(default=(), repr=False, compare=False)
    """Whether each of the fold's rows (in the data's order) was decided right: two models scored on the same rows
    compare row by row (`paired`). Not kept in the manifest."""

    def to_dict(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "correct"}, "sources": list(self.sources)}


def mcnemar_p(fixed: int, broken: int) -> float:
    """McNemar's exact test: how likely a split of the changed rows at least this uneven is when each change is a
    coin toss (1.0 when nothing changed)."""
    from scipy.stats import binomtest

    return float(binomtest(fixed, fixed + broken).pvalue) if fixed + broken else 1.0


def paired(a: Sequence[FoldScore], b: Sequence[FoldScore]) -> dict[str, float]:
    """Two models' folds of the same rows compared row by row: `a_only` rows right by `a` alone, `b_only` by `b`
    alone, and McNemar's exact p of that split (a gain on a few rows out of thousands is often a coin's)."""
    right_a = np.concatenate([np.asarray(f.correct, dtype=bool) for f in a])
    right_b = np.concatenate([np.asarray(f.correct, dtype=bool) for f in b])
    if right_a.shape != right_b.shape or [f.n for f in a] != [f.n for f in b]:
        raise ValueError("the folds hold different rows: score both models on the same folds of the same data")
    a_only, b_only = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    return {"a_only": a_only, "b_only": b_only, "mcnemar_p": mcnemar_p(a_only, b_only)}


def check_source_count(sources: Sequence[str], *, path: str | None = None) -> None:
    """Raise DataError when the rows (of the file `path`) hold more distinct sources than `group_sources` groups."""
    n = len(set(sources))
    if n > MAX_SOURCES:
        raise DataError(
            f"the rows have {n} distinct sources, too many to group into out-of-source folds (at most "
            f"{MAX_SOURCES}); merge some in the 'source' field",
            path=path,
            field="source",
        )


def group_sources(
    sources: Sequence[str],
    labels: Sequence[str],
    *,
    max_folds: int = MAX_FOLDS,
    min_sources: int = MIN_SOURCES_PER_LABEL,
    min_rows: int = MIN_ROWS_PER_SOURCE,
) -> list[tuple[str, ...]]:
    """The most groups (at most `max_folds`) the sources split into such that each group holds every label from
    at least `min_sources` of its sources (each with `min_rows` rows of that label); among such splits, the one
    whose groups are the most even in rows. [] when even all sources together do not (e.g. one source a label).
    More than MAX_SOURCES sources are a DataError (`check_source_count`)."""
    check_source_count(sources)
    rows = Counter(zip(sources, labels, strict=True))
    names = sorted(set(sources))
    every = sorted(set(labels))
    size = Counter(sources)

    def holds_every_label(group: Sequence[str]) -> bool:
        return all(sum(rows[(s, label)] >= min_rows for s in group) >= min_sources for label in every)

    for k in range(min(max_folds, len(names)), 0, -1):
        best: tuple[int, list[tuple[str, ...]]] | None = None
        for assignment in product(range(k), repeat=len(names)):
            if list(dict.fromkeys(assignment)) != list(range(k)):  # each split once: groups numbered by first use
                continue
            groups = [tuple(n for n, g in zip(names, assignment, strict=True) if g == i) for i in range(k)]
            if not all(holds_every_label(g) for g in groups):
                continue
            spread = max(sum(size[s] for s in g) for g in groups) - min(sum(size[s] for s in g) for g in groups)
            if best is None or spread < best[0]:
                best = (spread, groups)
        if best is not None:
            return best[1]
    return []


def score_folds(cascade: Cascade, data: Dataset, folds: Sequence[Sequence[str]]) -> list[FoldScore]:
    """Each fold's macro-F1 and balanced accuracy (stage 3 off), escalated share, static coverage and accuracy,
    recall per label and accuracy per source; folds are named A, B, ... in the order given. `data` must carry each
    row's source."""
    if data.sources is None:
        raise ValueError("the rows carry no source: out-of-source folds need a `source` field")
    decisions = cascade.classify_batch(list(data.texts))
    truth = np.array(data.labels)
    pred = np.array([d.label for d in decisions])
    stage = np.array([d.stage for d in decisions])
    escalated = np.array([d.escalated for d in decisions])
    source = np.array(data.sources)
    out = []
    for i, group in enumerate(folds):
        rows = np.isin(source, list(group))
        t, p = truth[rows], pred[rows]
        static = rows & (stage == "static")
        present = sorted(set(t))
        recall = recall_score(t, p, labels=present, average=None, zero_division=0)
        out.append(
            FoldScore(
                fold=chr(ord("A") + i),
                sources=tuple(group),
                n=int(rows.sum()),
                macro_f1=float(f1_score(t, p, average="macro", zero_division=0)),  # as `evaluate`: labels seen
                balanced_accuracy=float(np.mean(recall)),  # sklearn's balanced_accuracy_score
                oracle_macro_f1=float(f1_score(t, np.where(escalated[rows], t, p), average="macro", zero_division=0)),
                escalated=float(escalated[rows].mean()),
                static_coverage=float(static.sum() / rows.sum()) if cascade.static is not None else None,
                static_accuracy=float((truth[static] == pred[static]).mean()) if static.any() else None,
                recall={label: float(r) for label, r in zip(present, recall, strict=True)},
                accuracy_by_source={s: float((t == p)[source[rows] == s].mean()) for s in group},
                correct=tuple(bool(x) for x in t == p),
            )
        )
    return out
