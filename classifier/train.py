"""Train a whole cascade from labeled queries: measure the rules, fit the classifier, pick the threshold."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from .cascade import Cascade
from .data import Dataset
from .estimator import TaskClassifier
from .keywords import KeywordRules, load_rules
from .threshold import choose_threshold, threshold_curve

__all__ = ["DEFAULT_MAX_ESCALATION", "TrainingReport", "train_cascade"]

DEFAULT_MAX_ESCALATION = 0.10
"""Default target: escalate at most this share of the held-out queries that reach stage 2."""


@dataclass(frozen=True)
class TrainingReport:
    """What training measured: cross-validated stage-2 metrics, the threshold, the rules switched off."""

    n: int
    label_counts: dict[str, int]
    cv_accuracy: float
    cv_macro_f1: float
    threshold: float
    target: dict[str, float]
    rules: list[dict]

    @property
    def disabled_rules(self) -> list[dict]:
        return [r for r in self.rules if not r["enabled"]]


def train_cascade(data: Dataset, *, out: str | Path | None = None, rules_path: str | Path | None = None,
                  precision_floor: float = 0.98, max_escalation: float | None = None,
                  max_error: float | None = None, random_state: int = 0,
                  progress: bool | None = None, **classifier_params) -> tuple[Cascade, TrainingReport]:
    """Train on `data`; save to `out` when given. The threshold target defaults to DEFAULT_MAX_ESCALATION."""
    if max_escalation is None and max_error is None:
        max_escalation = DEFAULT_MAX_ESCALATION
    texts, labels = list(data.texts), list(data.labels)
    rules = KeywordRules(load_rules(rules_path)).calibrate(texts, labels, precision_floor=precision_floor)
    clf = TaskClassifier(random_state=random_state, progress=progress, **classifier_params).fit(texts, labels)

    proba = clf.cv_proba_
    oof_pred = clf.classes_[proba.argmax(axis=1)]
    conf, correct = proba.max(axis=1), oof_pred == np.array(labels)
    reaches_stage2 = np.array([rules.classify(t).label is None for t in texts])
    target = {"max_escalation": max_escalation} if max_escalation is not None else {"max_error": max_error}
    threshold = choose_threshold(conf[reaches_stage2], correct[reaches_stage2], **target)
    curve = threshold_curve(conf[reaches_stage2], correct[reaches_stage2])

    report = TrainingReport(
        n=len(texts), label_counts={k: labels.count(k) for k in clf.classes_.tolist()},
        cv_accuracy=float(accuracy_score(labels, oof_pred)),
        cv_macro_f1=float(f1_score(labels, oof_pred, average="macro")),
        threshold=threshold, target=target, rules=rules.to_list())
    cascade = Cascade(clf, rules, threshold)
    if out is not None:
        clf.save(out,
                 cascade={"threshold": threshold, "target": target, "precision_floor": precision_floor,
                          "curve": curve, "rules": rules.to_list()},
                 training={"n": report.n, "label_counts": report.label_counts, "data_sha256": data.sha256(),
                           "data_file": Path(data.path).name if data.path else None},
                 metrics={"cv_accuracy": report.cv_accuracy, "cv_macro_f1": report.cv_macro_f1,
                          "cv_folds": clf.cv})
        cascade = Cascade.load(out)
    return cascade, report
