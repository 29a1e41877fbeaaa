"""Does the tuned encoder still serve labels it was not tuned for? Base vs tuned MiniLM on CLINC150.

CLINC150 (clinc/oos-eval, `data/data_full.json`, CC BY 3.0) holds requests people wrote to an assistant, in 150
intents grouped into 10 domains (`data/domains.json`): a label set of someone else's. For each encoder, a
logistic regression over its vectors is trained on k requests per label (5 seeds) from CLINC's train split and
scored on its test split, at the domain level (10 labels) and at the intent level (150 labels). The encoders
are the base one and those `encoder_folds.py` tuned on our training rows (`.cache/encoder-folds/`); one tuned
by another recipe or on other rows than `data/queries.jsonl` holds now is refused, saying why. Several
minutes on 2 cores (CLINC's test split and each sample embedded by every encoder, on torch).

    python benchmarks/encoder_forgetting.py --clinc PATH_TO_A_CHECKOUT_OR_BARE_GIT_DIR [--objective ...] [--epochs N]
        [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import DATA, folds_cache, read_clinc, require_clinc, require_tuned, rows_of, sample  # noqa: E402
from classifier.serving.encoder import model_dir  # noqa: E402
from classifier.training.tune import TorchEncoder, TuneRecipe  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clinc", type=Path, required=True, help="clinc/oos-eval checkout or bare git directory")
    parser.add_argument("--k", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--objective", nargs="+", default=["softmax", "contrastive"], help="as encoder_folds.py")
    parser.add_argument("--epochs", type=int, default=2, help="as encoder_folds.py")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/encoder_forgetting.json")
    args = parser.parse_args(argv)
    require_clinc(args.clinc)
    data = json.loads(read_clinc(args.clinc, "data/data_full.json"))
    domains = json.loads(read_clinc(args.clinc, "data/domains.json"))
    domain_of = {intent: d for d, intents in domains.items() for intent in intents}
    train = [(t, i) for t, i in data["train"]]
    test = [(t, i) for t, i in data["test"]]
    own = rows_of(DATA)
    encoders = {"base": TorchEncoder(model_dir())}
    for objective in args.objective:
        where = folds_cache("own→public", objective, args.epochs)
        recipe = TuneRecipe(objective=objective, epochs=args.epochs)
        tuned = require_tuned(where, *own, recipe, "`python benchmarks/encoder_folds.py` tunes it")
        encoders[f"tuned {objective}-{args.epochs}ep"] = TorchEncoder(tuned)
    result: dict = {"clinc": "clinc/oos-eval data/data_full.json", "k": args.k, "seeds": args.seeds, "scores": {}}
    test_texts = [t for t, _ in test]
    for name, encoder in encoders.items():
        test_vecs = encoder.encode(test_texts, progress=False)
        scores = result["scores"][name] = {}
        for level in ("domain", "intent"):
            lab = domain_of.__getitem__ if level == "domain" else str

            truth = [lab(i) for _, i in test]
            for k in args.k:
                f1s = []
                for seed in range(args.seeds):
                    picked = sample([(t, lab(i)) for t, i in train], k, seed)
                    x = encoder.encode([t for t, _ in picked], progress=False)
                    lr = LogisticRegression(C=4.0, max_iter=3000).fit(x, [y for _, y in picked])
                    f1s.append(f1_score(truth, lr.predict(test_vecs), average="macro"))
                scores[f"{level} k={k}"] = [round(float(np.mean(f1s)), 4), round(float(np.std(f1s)), 4)]
        print(name, scores, flush=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
