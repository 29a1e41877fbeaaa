"""Which signal catches stage 2's errors best at a fixed escalation budget, on sources the heads never saw?

Trains the two heads as `train_cascade` does (MiniLM ‖ static ‖ n-grams, and the static head) on the training
rows, takes their out-of-fold probabilities, and fits small error models on signals of the out-of-fold
predictions; then, on the held-out sources, escalates the same share of queries by each score and reports the
share of MiniLM's errors caught (escalation recall) and the share of escalated queries that were errors
(precision). Signals: MiniLM's top probability (today's rule), the margin between its top two, the static head's
agreement and confidence, and cosine to the nearest training example of the predicted label and of any other;
each alone (static disagreement ranks first, then the top probability) and all in one error model.

With the tuned encoder (tuned on `data/queries.jsonl`), only the fold own→public is clean, and its
out-of-fold signals come from the cross-fitted vectors (`data/queries.crossfit.npz`), as `train` picks its
thresholds; with the base encoder both folds run. Several minutes on 2 cores (per fold, two heads trained with
cross-validation and the held-out sources embedded).

    python benchmarks/escalation_signals.py [--encoder tuned|base] [--budget 0.10 0.20] [--corpus PATH] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import DATA, require_corpus  # noqa: E402
from classifier.data import load_dataset  # noqa: E402
from classifier.serving.static_embedding import StaticMiniLMEmbedder  # noqa: E402
from classifier.training.estimator import TaskClassifier  # noqa: E402
from classifier.training.train import _cross_fitted  # noqa: E402
from classifier.training.tune import CrossFit  # noqa: E402


def signals(p: np.ndarray, ps: np.ndarray, vecs: np.ndarray, ex_vecs: np.ndarray, ex_y: np.ndarray,
            exclude: np.ndarray | None) -> np.ndarray:  # fmt: skip
    """Per query: top prob, margin, entropy, static agrees, static top prob, nearest same-label / other cosine."""
    top2 = np.sort(p, axis=1)[:, -2:]
    pred = p.argmax(axis=1)
    sims = vecs @ ex_vecs.T
    if exclude is not None:
        sims[exclude] = -1.0
    same = np.where(ex_y[None, :] == pred[:, None], sims, -1.0).max(axis=1)
    other = np.where(ex_y[None, :] != pred[:, None], sims, -1.0).max(axis=1)
    entropy = -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1)
    return np.column_stack([top2[:, 1], top2[:, 1] - top2[:, 0], entropy, (ps.argmax(axis=1) == pred).astype(float),
                            ps.max(axis=1), same, other, same - other])  # fmt: skip


NAMES = ["top", "margin", "entropy", "static_agrees", "static_top", "nn_same", "nn_other", "nn_gap"]


def at_budget(score: np.ndarray, wrong: np.ndarray, budget: float) -> dict:
    """Escalate the `budget` share of queries with the highest error score."""
    k = int(round(budget * len(score)))
    top = np.argsort(-score, kind="stable")[:k]
    caught = wrong[top].sum()
    return {"recall": round(float(caught / max(1, wrong.sum())), 4), "precision": round(float(caught / max(1, k)), 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="tuned")
    parser.add_argument("--budget", type=float, nargs="+", default=[0.10, 0.20])
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/escalation_signals.json")
    parser.add_argument("--corpus", type=Path, help="the public corpus (default: data/public/, else ../shared)")
    args = parser.parse_args(argv)
    corpus = require_corpus(args.corpus)
    own, public = load_dataset(DATA), load_dataset(corpus)
    result: dict = {"encoder": args.encoder, "folds": {}}
    folds = {"own→public": (own, public), "public→own": (public, own)}
    if args.encoder == "tuned":  # the tuned encoder saw every own row: public→own would test on its training rows
        del folds["public→own"]
    for name, (train, test) in folds.items():
        texts, y = list(train.texts), np.array(train.labels)
        cv_main, cv_static = (None, None)
        if args.encoder == "tuned":
            crossfit = CrossFit.load(ROOT / "data/queries.crossfit.npz")
            cv_main, cv_static = _cross_fitted(texts, "tuned", crossfit, True)
        clf = TaskClassifier(encoder=args.encoder, static_features=True, progress=False)
        clf.fit(texts, y, cv_embeddings=cv_main)
        table = StaticMiniLMEmbedder(encoder=args.encoder)
        fast = TaskClassifier(encoder=args.encoder, embedder=table, progress=False).fit(
            texts, y, cv_embeddings=cv_static
        )
        classes = clf.classes_
        y_idx = np.searchsorted(classes, y)
        ex = clf.example_embeddings_.astype(np.float32)
        ex_oof = ex if cv_main is None else cv_main[:, : ex.shape[1]].astype(np.float32)
        # Out-of-fold nearest neighbours: the folds TaskClassifier used (same seed), each query against the rest.
        exclude = np.zeros((len(texts), len(texts)), dtype=bool)
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(np.zeros(len(y)), y_idx)
        for _, held in folds:
            exclude[np.ix_(held, held)] = True
        x_tr = signals(clf.cv_proba_, fast.cv_proba_, ex_oof, ex_oof, y_idx, exclude)
        wrong_tr = clf.cv_proba_.argmax(axis=1) != y_idx
        model = LogisticRegression(C=1.0, max_iter=2000).fit(x_tr, wrong_tr)
        test_texts, test_y = list(test.texts), np.searchsorted(classes, test.labels)
        p, ps = clf.predict_proba(test_texts), fast.predict_proba(test_texts)
        vecs = clf.embed(test_texts)[:, : ex.shape[1]].astype(np.float32)
        x_te = signals(p, ps, vecs, ex, y_idx, None)
        wrong = p.argmax(axis=1) != test_y
        scores = {
            "top probability (today)": -x_te[:, 0],
            "margin": -x_te[:, 1],
            "entropy": x_te[:, 2],
            "static disagrees, then top probability": 2 * (1 - x_te[:, 3]) - x_te[:, 0],
            "static top probability": -x_te[:, 4],
            "nearest same-label cosine": -x_te[:, 5],
            "nearest-example gap (same - other)": -x_te[:, 7],
            "error model (all signals)": model.predict_proba(x_te)[:, 1],
        }
        coef = dict(zip(NAMES, np.round(model.coef_[0], 3).tolist(), strict=True))
        fold = result["folds"][name] = {"errors": int(wrong.sum()), "n": len(wrong), "coef": coef}
        for b in args.budget:
            fold[f"budget {b:.2f}"] = {k: at_budget(s, wrong, b) for k, s in scores.items()}
        print(name, json.dumps(fold, indent=1), flush=True)
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
