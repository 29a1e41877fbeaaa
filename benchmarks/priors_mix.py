"""The cascade on a `default`-heavy mix, with and without priors estimated from the unlabeled traffic.

Real chat traffic is about two thirds `default`; the heads are trained on a balanced mix. The evaluation set is
re-weighted so that `default` is `--default-share` of it (every query kept, weights per label), and the cascade
is scored as trained, under priors that EM estimates from the queries' MiniLM probabilities (no labels read;
bounded as `taskrouter priors` bounds them), and under the true mix: stage 3 off, and its upper bound ("oracle":
an escalated query counts as right).

Then the same mix as traffic: `--stream` queries drawn by weight (seeded), decided one at a time, as trained and
under the estimated priors, with and without an escalation budget of `--budget` (`Cascade.with_budget`).
Several minutes on 2 cores.

    python benchmarks/priors_mix.py --data ../shared/data/dev/dev.jsonl [--model DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import GET_DEV, require_file  # noqa: E402
from classifier.data import load_dataset  # noqa: E402
from classifier.serving.budget import EscalationBudget  # noqa: E402
from classifier.serving.cascade import Cascade  # noqa: E402
from classifier.serving.priors import bounded, estimate_priors  # noqa: E402


def scores(cascade: Cascade, texts: list[str], truth: np.ndarray, weight: np.ndarray) -> dict:
    return measure(cascade.classify_batch(texts), cascade.labels, truth, weight)


def measure(decisions, labels: list[str], truth: np.ndarray, weight: np.ndarray) -> dict:
    pred = np.array([d.label for d in decisions])
    escalated = np.array([d.escalated for d in decisions])
    oracle = np.where(escalated, truth, pred)
    recalls = {
        label: round(float(weight[(truth == label) & (pred == label)].sum() / weight[truth == label].sum()), 4)
        for label in labels
    }
    return {
        "macro_f1": round(float(f1_score(truth, pred, average="macro", sample_weight=weight)), 4),
        "macro_f1_oracle": round(float(f1_score(truth, oracle, average="macro", sample_weight=weight)), 4),
        "accuracy": round(float(weight[pred == truth].sum() / weight.sum()), 4),
        "escalated": round(float(weight[escalated].sum() / weight.sum()), 4),
        "recall": recalls,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--default-share", type=float, default=2 / 3)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/priors_mix.json")
    parser.add_argument("--stream", type=int, default=5000, help="queries drawn as traffic (0: skip)")
    parser.add_argument("--budget", type=float, default=0.10, help="escalation budget: share of queries")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    require_file(args.data, GET_DEV)
    data = load_dataset(args.data)
    texts, truth = list(data.texts), np.array(data.labels)
    cascade = Cascade.load(args.model, cache_size=0)
    labels = cascade.labels
    others = [lab for lab in labels if lab != "default"]
    share = {"default": args.default_share, **{lab: (1 - args.default_share) / len(others) for lab in others}}
    counts = {lab: int((truth == lab).sum()) for lab in labels}
    weight = np.array([share[t] / counts[t] for t in truth]) * len(truth)
    train = np.array([cascade.training_priors[lab] for lab in labels])
    estimate = estimate_priors(cascade.classifier.predict_proba(texts), train, sample_weight=weight)
    held = bounded(estimate, train, n=len(texts))
    estimated = cascade.with_priors(dict(zip(labels, held, strict=True)))
    result = {
        "data": str(args.data),
        "mix": share,
        "training_priors": dict(zip(labels, np.round(train, 4).tolist(), strict=True)),
        "estimated": dict(zip(labels, np.round(estimate, 4).tolist(), strict=True)),
        "estimated_bounded": dict(zip(labels, np.round(held, 4).tolist(), strict=True)),
        "as trained": scores(cascade, texts, truth, weight),
        "estimated priors": scores(estimated, texts, truth, weight),
        "true mix": scores(cascade.with_priors(share), texts, truth, weight),
        "balanced (unweighted)": scores(cascade, texts, truth, np.ones(len(texts))),
    }
    if args.stream:
        result["stream"] = stream(
            {"as trained": cascade, "estimated priors": estimated},
            texts,
            truth,
            weight,
            args.stream,
            args.budget,
            args.seed,
        )
    print(json.dumps(result, indent=2))
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def stream(
    cascades: dict[str, Cascade],
    texts: list[str],
    truth: np.ndarray,
    weight: np.ndarray,
    n: int,
    share: float,
    seed: int,
) -> dict:
    """The mix as traffic: `n` queries drawn by weight, decided one at a time, without and with the budget."""
    order = np.random.default_rng(seed).choice(len(texts), size=n, p=weight / weight.sum())
    drawn, ones = truth[order], np.ones(n)
    out: dict = {"queries": n, "seed": seed, "budget": share}
    for name, cascade in cascades.items():
        free = cascade.classify_batch(texts)  # no budget: a query's decision does not depend on the traffic
        out[name] = measure([free[i] for i in order], cascade.labels, drawn, ones)
        budget = EscalationBudget(share)
        capped = cascade.with_budget(budget)
        decisions = [capped.classify(texts[i]) for i in order]
        out[f"{name}, budget {share:.0%}"] = {
            **measure(decisions, cascade.labels, drawn, ones),
            "escalated_after_warmup": round(float(np.mean([d.escalated for d in decisions[budget.warmup :]])), 4),
        }
    return out


if __name__ == "__main__":
    sys.exit(main())
