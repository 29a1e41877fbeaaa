"""A few examples per label: taskrouter's head against nearest-neighbour routing over the same MiniLM vectors.

For each label set, k training rows per label (k = 8, 16, 32, 64; 5 seeds) are drawn and these routers are
fitted on them, all reading the base MiniLM's vectors (the serving ONNX graph, each text embedded once and kept
in `.cache/few-shot-vectors.npz`):

    taskrouter   `TaskClassifier` as `taskrouter train` fits its MiniLM head for a user's own labels: the base
                 encoder (what `--encoder auto` picks for labels other than the four shipped ones), MiniLM ‖
                 static-table vector ‖ char n-grams → logistic regression, default parameters; scored by
                 `predict` (the head alone: no keyword rules, no static stage, no escalation)
    --no-static  the same without the static-table vector (`taskrouter train --no-static`)
    nn           1-nearest neighbour by cosine (what utterance-based semantic routers do)
    top3         the label whose 3 most similar training rows have the highest mean similarity

Heads are fitted with cv=0: cross-validation only sets their temperature, which leaves `predict` as it is. Each
router is also trained on all rows ("all"), for the gap to the k-shot routers. Label sets:

    clinc-domains  CLINC150 (clinc/oos-eval, `data/data_full.json`, CC BY 3.0): its 10 domains; k per domain from
                   the train split (1,500 a domain), scored on the test split (4,500 rows)
    clinc-intents  the same at the level of its 150 intents (100 train rows each: k = 64 is most of them)
    own-to-public  the four shipped labels: k per label from data/queries.jsonl, scored on the public corpus
                   (5,116 rows of other writers; skipped with a line when absent); "all" adds the shipped model
                   (`Cascade.load()`: rules, static stage, tuned encoder; trained on all of data/queries.jsonl)

The dev set is not read. Macro-F1: mean, min and max over the seeds, and the seeds on which each taskrouter head
beats nn. About 25 minutes on 2 cores, 8 of them embedding.

    python benchmarks/few_shot.py --clinc PATH_TO_A_CHECKOUT_OR_BARE_GIT_DIR [--corpus PATH] [--json PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import DATA, find_corpus, read_clinc, require_clinc, rows_of, sample  # noqa: E402
from classifier.serving.embedding import EMBEDDER_DIM, EMBEDDER_ID, serving_embedder  # noqa: E402
from classifier.training.estimator import TaskClassifier  # noqa: E402

Rows = list[tuple[str, str]]
HEADS = {"taskrouter": True, "--no-static": False}
"""Each taskrouter head, and whether it reads the static-table vector (`static_features`)."""
METHODS = (*HEADS, "nn", "top3")


class VectorTable:
    """An `Embedder` over vectors made once: every text the benchmark reads, embedded by the base serving graph."""

    id = EMBEDDER_ID
    dim = EMBEDDER_DIM

    def __init__(self, texts: Sequence[str], cache: Path | None = None) -> None:
        unique = sorted(set(texts))
        self.row = {t: i for i, t in enumerate(unique)}
        embedder = serving_embedder("base")
        digest = hashlib.sha256("\0".join([embedder.id, type(embedder).__name__, *unique]).encode()).hexdigest()
        if cache is not None and cache.is_file() and str(np.load(cache)["digest"]) == digest:
            self.vectors = np.load(cache)["vectors"]
            return
        self.vectors = embedder.encode(unique, progress=False)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, vectors=self.vectors, digest=np.array(digest))

    def encode(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        return self.vectors[[self.row[t] for t in texts]]


def similarity_router(table: VectorTable, train: Rows, top: int) -> Callable[[list[str]], np.ndarray]:
    """The label whose `top` most similar training rows (cosine) have the highest mean similarity; top=1 is 1-NN."""
    x = table.encode([t for t, _ in train])
    labels = np.array([y for _, y in train])
    classes = np.unique(labels)

    def predict(texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), 1000):  # 1,000 test rows at a time: a 1,000 × 15,000 block at most
            sims = table.encode(texts[start : start + 1000]) @ x.T
            scores = np.stack([_top_mean(sims[:, labels == c], top) for c in classes], axis=1)
            out.append(classes[scores.argmax(axis=1)])
        return np.concatenate(out)

    return predict


def _top_mean(sims: np.ndarray, top: int) -> np.ndarray:
    n = min(top, sims.shape[1])
    return np.partition(sims, sims.shape[1] - n, axis=1)[:, -n:].mean(axis=1)


def routers(table: VectorTable, train: Rows) -> dict[str, Callable[[list[str]], np.ndarray]]:
    x, y = [t for t, _ in train], [y for _, y in train]
    heads = {
        name: TaskClassifier(embedder=table, static_features=static, cv=0, progress=False).fit(x, y).predict
        for name, static in HEADS.items()
    }
    return {**heads, "nn": similarity_router(table, train, 1), "top3": similarity_router(table, train, 3)}


def measure(table: VectorTable, train: Rows, test: Rows, ks: list[int], seeds: int) -> dict:
    """Macro-F1 of each router on `test`, trained on k rows per label of `train` (per seed) and on all of it."""
    texts, truth = [t for t, _ in test], [y for _, y in test]

    def f1(predict: Callable[[list[str]], np.ndarray]) -> float:
        return round(float(f1_score(truth, predict(texts), average="macro")), 4)

    out: dict = {"train_rows": len(train), "test_rows": len(test), "labels": len({y for _, y in train})}
    for k in ks:
        per_seed = {m: [] for m in METHODS}
        for seed in range(seeds):
            for name, predict in routers(table, sample(train, k, seed)).items():
                per_seed[name].append(f1(predict))
        at = out[f"k={k}"] = {
            m: {"mean": round(float(np.mean(v)), 4), "min": min(v), "max": max(v), "seeds": v}
            for m, v in per_seed.items()
        }
        for head in HEADS:
            margins = [round(a - b, 4) for a, b in zip(per_seed[head], per_seed["nn"], strict=True)]
            at[head] |= {"wins_over_nn": sum(d > 0 for d in margins), "margin_over_nn": margins}
        print(k, {m: at[m]["mean"] for m in METHODS}, {h: at[h]["wins_over_nn"] for h in HEADS}, flush=True)
    out["all"] = {name: f1(predict) for name, predict in routers(table, train).items()}
    for head in HEADS:  # the gap to the same head trained on all rows, after k rows per label
        gaps = {f"{m} k={k}": round(out["all"][head] - out[f"k={k}"][m]["mean"], 4) for k in ks for m in (head, "nn")}
        if 64 in ks:
            gaps["halved at k=64"] = gaps[f"{head} k=64"] <= gaps["nn k=64"] / 2
        out.setdefault("gap_to_all", {})[head] = gaps
    print("all", out["all"], flush=True)
    return out


def clinc_commit(where: Path) -> str:
    """The commit of the CLINC checkout or bare git directory read (HEAD), or "unknown"."""
    git_dir = where if (where / "HEAD").is_file() else where / ".git"
    found = subprocess.run(["git", f"--git-dir={git_dir}", "rev-parse", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clinc", type=Path, required=True, help="clinc/oos-eval checkout or bare git directory")
    parser.add_argument("--corpus", type=Path, default=None, help="the public corpus (default: the built copy)")
    parser.add_argument("--k", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-intents", action="store_true", help="skip the 150-intent level")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/few_shot.json")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache/few-shot-vectors.npz", help="vectors kept here")
    args = parser.parse_args(argv)
    require_clinc(args.clinc)
    corpus = find_corpus(args.corpus)
    if corpus is None:
        print("no public corpus (data/public/ or ../shared/data/public/): own-to-public skipped", flush=True)
    started = time.perf_counter()

    data = json.loads(read_clinc(args.clinc, "data/data_full.json"))
    domain_of = {
        i: d for d, intents in json.loads(read_clinc(args.clinc, "data/domains.json")).items() for i in intents
    }
    clinc_train, clinc_test = [(t, i) for t, i in data["train"]], [(t, i) for t, i in data["test"]]
    sets: dict[str, tuple[Rows, Rows]] = {
        "clinc-domains": ([(t, domain_of[i]) for t, i in clinc_train], [(t, domain_of[i]) for t, i in clinc_test])
    }
    if not args.no_intents:
        sets["clinc-intents"] = (clinc_train, clinc_test)
    if corpus is not None:
        own, public = rows_of(DATA), rows_of(corpus)
        sets["own-to-public"] = (list(zip(*own, strict=True)), list(zip(*public, strict=True)))

    table = VectorTable([t for train, test in sets.values() for t, _ in train + test], args.cache)
    print(f"embedded {len(table.row)} texts in {time.perf_counter() - started:.0f} s", flush=True)
    result: dict = {
        "clinc": f"clinc/oos-eval data/data_full.json at {clinc_commit(args.clinc)} (CC BY 3.0)",
        "corpus": os.path.relpath(corpus, ROOT) if corpus is not None else None,
        "encoder": "base (serving ONNX graph), every router",
        "heads": "TaskClassifier(cv=0) as `taskrouter train` fits its MiniLM head (taskrouter: static_features=True; "
        "--no-static: False); predict(), the head alone",
        "k": args.k,
        "seeds": args.seeds,
        "results": {},
    }
    for name, (train, test) in sets.items():
        print(name, flush=True)
        result["results"][name] = measure(table, train, test, args.k, args.seeds)
    if corpus is not None:
        from classifier.serving.cascade import Cascade

        test = sets["own-to-public"][1]
        cascade = Cascade.load()
        for head in (cascade.static, cascade.classifier):
            if head is not None:
                head.progress = False
        labels = [d.label for d in cascade.classify_batch([t for t, _ in test])]
        shipped = round(float(f1_score([y for _, y in test], labels, average="macro")), 4)
        result["results"]["own-to-public"]["all"]["shipped cascade"] = shipped
        print("shipped cascade", shipped, flush=True)
    result["seconds"] = round(time.perf_counter() - started)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
