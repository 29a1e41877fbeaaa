"""How well the scope check sends queries that fit no label to the fallback label, on CLINC150.

CLINC150 (clinc/oos-eval `data/data_full.json`, CC BY 3.0) holds requests people wrote to an assistant: 150
intents in 10 domains, and 1,200 requests that fit none of them (`oos_*`). Each rotation (seeded) keeps 7
domains as the labels and holds 3 out; `taskrouter train`'s `train_cascade` is fitted on `--per-intent` rows of
each kept intent from the train split, and the model is served with a fallback label. Scored on the test split:

- in-scope: test requests of the kept domains; the share sent to the fallback label (wrongly), and macro-F1;
- held-out domains: test requests of the 3 held-out domains; the share sent to the fallback label (rightly);
- oos: CLINC's own out-of-scope test requests; the share sent to the fallback label.

The served cascade uses the default target (`fit_scope.DEFAULT_MAX_FALLBACK` of held-out training rows sent to the
fallback label); the other targets of `--max-fallback` are read with `fit_scope` on the same training vectors.
Several minutes on 2 cores (a cascade trained, and CLINC's test split classified, per run).

    python benchmarks/out_of_scope.py --clinc PATH_TO_A_CHECKOUT_OR_BARE_GIT_DIR [--per-intent 2 20] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import read_clinc, require_clinc  # noqa: E402
from classifier import Cascade  # noqa: E402
from classifier.data import load_dataset  # noqa: E402
from classifier.training.fit_scope import DEFAULT_MAX_FALLBACK, fit_scope  # noqa: E402
from classifier.training.train import train_cascade  # noqa: E402

FALLBACK = "out_of_scope"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clinc", type=Path, required=True, help="clinc/oos-eval checkout or bare git directory")
    parser.add_argument("--per-intent", type=int, nargs="+", default=[2, 20], help="training rows per intent")
    parser.add_argument("--rotations", type=int, default=3)
    parser.add_argument("--max-fallback", type=float, nargs="+", default=[0.05, 0.1], help="more scope targets")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/out_of_scope.json")
    args = parser.parse_args(argv)
    require_clinc(args.clinc)
    logging.basicConfig(level=logging.WARNING)
    data = json.loads(read_clinc(args.clinc, "data/data_full.json"))
    domains = json.loads(read_clinc(args.clinc, "data/domains.json"))
    domain_of = {intent: d for d, intents in domains.items() for intent in intents}
    names = sorted(domains)
    oos = [t for t, _ in data["oos_test"]]
    result: dict = {
        "clinc": "clinc/oos-eval data/data_full.json",
        "default_target": DEFAULT_MAX_FALLBACK,
        "rotations": args.rotations,
        "held_out_domains": 3,
        "runs": [],
    }
    for per_intent in args.per_intent:
        for rotation in range(args.rotations):
            rng = np.random.default_rng(rotation)
            held = set(rng.choice(names, size=3, replace=False).tolist())
            kept = [d for d in names if d not in held]
            by_intent: dict[str, list[str]] = {}
            for text, intent in data["train"]:
                if domain_of[intent] in kept:
                    by_intent.setdefault(intent, []).append(text)
            rows = [
                (by_intent[i][j], domain_of[i])
                for i in sorted(by_intent)
                for j in rng.choice(len(by_intent[i]), size=per_intent, replace=False)
            ]
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "train.jsonl"
                path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows), "utf-8")
                _, report = train_cascade(load_dataset(path), out=Path(tmp) / "model", progress=False)
                cascade = Cascade.load(Path(tmp) / "model", fallback_label=FALLBACK)
                inside = [(t, domain_of[i]) for t, i in data["test"] if domain_of[i] in kept]
                outside = [t for t, i in data["test"] if domain_of[i] in held]
                pred = [d.label for d in cascade.classify_batch([t for t, _ in inside])]
                caught_held = np.mean([d.label == FALLBACK for d in cascade.classify_batch(outside)])
                caught_oos = np.mean([d.label == FALLBACK for d in cascade.classify_batch(oos)])
                head = cascade.classifier
                vectors = {
                    "in": head.embedders[0].encode([t for t, _ in inside], progress=False),
                    "held": head.embedders[0].encode(outside, progress=False),
                    "oos": head.embedders[0].encode(oos, progress=False),
                }
                targets = {}
                for target in args.max_fallback:
                    scope = fit_scope(head.example_embeddings_, head.example_labels_, max_fallback=target)
                    assert scope is not None, "every kept domain has rows to hold out"
                    ex = head.example_embeddings_.astype(np.float32)
                    targets[str(target)] = {
                        part: round(float(np.mean(scope.similarity(v, ex) < scope.threshold)), 4)
                        for part, v in vectors.items()
                    }
            assert report.scope is not None, "every kept domain has rows to hold out"
            run = {
                "per_intent": per_intent,
                "rows": len(rows),
                "held_out": sorted(held),
                "scope_k": report.scope.k,
                "scope_threshold": round(report.scope.threshold, 4),
                "in_scope_to_fallback": round(float(np.mean([p == FALLBACK for p in pred])), 4),
                "in_scope_macro_f1": round(
                    float(f1_score([y for _, y in inside], pred, labels=kept, average="macro")), 4
                ),
                "held_out_domains_to_fallback": round(float(caught_held), 4),
                "oos_to_fallback": round(float(caught_oos), 4),
                "to_fallback_at_other_targets (in, held, oos)": targets,
            }
            result["runs"].append(run)
            print(json.dumps(run), flush=True)
    summary = {}
    for per_intent in args.per_intent:
        runs = [r for r in result["runs"] if r["per_intent"] == per_intent]
        summary[str(per_intent)] = {
            key: [
                round(float(np.mean([r[key] for r in runs])), 4),
                round(float(np.min([r[key] for r in runs])), 4),
                round(float(np.max([r[key] for r in runs])), 4),
            ]
            for key in ("in_scope_to_fallback", "in_scope_macro_f1", "held_out_domains_to_fallback", "oos_to_fallback")
        }
        for target in args.max_fallback:
            summary[str(per_intent)][f"target {target} (in, held, oos)"] = [
                round(
                    float(
                        np.mean([r["to_fallback_at_other_targets (in, held, oos)"][str(target)][part] for r in runs])
                    ),
                    4,
                )
                for part in ("in", "held", "oos")
            ]
    result["summary (mean, min, max)"] = summary
    print(json.dumps(summary, indent=2))
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
