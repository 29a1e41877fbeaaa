"""Single-query latency on prompts with a long tail of lengths, for each classifier window.

The set: the dev queries (read where they lie, evaluation only) plus long prompts made from public text in the
installed packages — Python source files ("pasted code") and package descriptions and licences (documents), cut to
a length drawn log-uniformly in each bucket up to 20,000 characters, with an instruction before or a question
after ("Find the bug in this code:", "Summarize this:", ...). Seeded, so the same venv gives the same set.

Each query is classified `--repeat` times per window (`Cascade.load(cache_size=0, window=...)`; the median is
kept), the windows interleaved in a rotating order so machine load hits them alike. Reports p50/p95/p99 by length
bucket and overall, the load average, and per window the dev macro-F1 and the decisions (dev and long) that differ
from reading whole texts.

    python benchmarks/long_tail.py [--dev ../shared/data/dev/dev.jsonl] [--json benchmarks/long_tail.json]
    python benchmarks/long_tail.py --int8 --json benchmarks/long_tail_int8.json

MiniLM runs with no vector cache (a repeat would otherwise time a cache hit): the shipped graph, or with `--int8`
the int8 graph quantised from it. Several minutes on 2 cores (each of about 2,000 queries, 3 times per window).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import DEV, GET_DEV, require_file  # noqa: E402
from classifier.serving.cascade import Cascade  # noqa: E402
from classifier.serving.onnx_embedding import MAX_TOKENS, OnnxMiniLMEmbedder  # noqa: E402

BUCKETS = [(0, 200), (200, 1_000), (1_000, 4_000), (4_000, 20_001)]
LONG_PER_BUCKET = 80
WINDOWS: dict[str, tuple[int, int] | None] = {
    "whole text": None,
    "750+250": (750, 250),
    "1500+500": (1_500, 500),
    "3000+1000": (3_000, 1_000),
}
CODE_ASKS = [
    "Find the bug in this code:",
    "Explain what this code does:",
    "Add type hints to this code:",
    "Write unit tests for this code:",
    "Can you refactor this to be more readable?",
]
CODE_AFTER = ["What does the code above do?", "Why does this crash?", "How can I make this faster?"]
DOC_ASKS = [
    "Summarize this:",
    "Translate this into French:",
    "List the key points of this document:",
    "Rewrite this in plain English:",
]
DOC_AFTER = ["Can you summarize the above in three bullet points?", "What are the main obligations in this text?"]


def _sources() -> tuple[list[Path], list[Path]]:
    site = Path(sysconfig.get_paths()["purelib"])
    code = sorted(p for p in site.glob("*/*.py") if p.stat().st_size > 2_000)
    docs = sorted(
        p
        for pat in ("*.dist-info/METADATA", "*.dist-info/LICENSE*", "*.dist-info/licenses/*")
        for p in site.glob(pat)
        if p.is_file() and p.stat().st_size > 2_000
    )
    return code, docs


def long_prompts(seed: int = 0) -> list[str]:
    """Prompts of pasted code or documents, LONG_PER_BUCKET per bucket above 200 characters."""
    rng = random.Random(seed)
    code, docs = _sources()
    out = []
    for lo, hi in BUCKETS[1:]:
        for _ in range(LONG_PER_BUCKET):
            n = int(math.exp(rng.uniform(math.log(lo), math.log(hi - 1))))
            is_code = rng.random() < 0.5
            body = ""
            while len(body) < n:  # join files until long enough
                body += rng.choice(code if is_code else docs).read_text(encoding="utf-8", errors="replace") + "\n"
            asks, after = (CODE_ASKS, CODE_AFTER) if is_code else (DOC_ASKS, DOC_AFTER)
            if rng.random() < 2 / 3:
                ask = rng.choice(asks) + "\n\n"
                out.append(ask + body[: max(1, n - len(ask))])
            else:
                q = "\n\n" + rng.choice(after)
                out.append(body[: max(1, n - len(q))] + q)
    return out


def bucket(n: int) -> str:
    return next(f"{lo}-{hi - 1 if hi > 20_000 else hi}" for lo, hi in BUCKETS if lo <= n < hi)


def percentiles(ms: list[float]) -> dict:
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"n": len(ms), "p50_ms": round(p50, 2), "p95_ms": round(p95, 2), "p99_ms": round(p99, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", type=Path, default=DEV)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "long_tail.json")
    ap.add_argument("--repeat", type=int, default=3, help="timings per query and window; the median is kept")
    ap.add_argument("--int8", action="store_true", help="MiniLM on the int8 graph instead of the shipped one")
    ap.add_argument("--max-tokens", type=int, default=MAX_TOKENS, help="MiniLM's token window (0: the first 256)")
    ap.add_argument("--model", type=Path, default=None, help="model directory (default: the shipped model)")
    args = ap.parse_args()
    require_file(args.dev, GET_DEV)
    rows = [json.loads(line) for line in args.dev.open(encoding="utf-8") if line.strip()]
    dev = [r["text"] for r in rows]
    texts = dev + long_prompts()
    base = Cascade.load(args.model, cache_size=0)
    encoder = base.manifest.get("params", {}).get("encoder", "base")  # the graph the shipped model reads
    minilm = OnnxMiniLMEmbedder(encoder=encoder, quantize=args.int8, max_tokens=args.max_tokens or None, cache_size=0)
    base.classifier.embedder = minilm.load()
    cascades = {
        name: Cascade.from_stages(base.stages, manifest=base.manifest, cache_size=0, window=w)
        for name, w in WINDOWS.items()
    }
    names = list(cascades)
    for t in texts[:20] + texts[-20:]:  # warm up every path
        for c in cascades.values():
            c.classify(t)
    load_start = os.getloadavg()
    ms: dict[str, list[float]] = {n: [] for n in names}
    labels: dict[str, list[str]] = {n: [] for n in names}
    for i, t in enumerate(texts):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            runs = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                d = cascades[name].classify(t)
                runs.append((time.perf_counter() - t0) * 1000)
            ms[name].append(float(np.median(runs)))
            labels[name].append(d.label)
    load_end = os.getloadavg()
    gold = [r["label"] for r in rows]
    result: dict = {
        "load_average_1_5_15": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in load_end]},
        "cpus": os.cpu_count(),
        "n": len(texts),
        "repeat": args.repeat,
        "minilm": ("onnx-int8" if args.int8 else "onnx (shipped graph)") + f", {encoder} encoder",
        "minilm_max_tokens": args.max_tokens or "first 256",
        "longest_dev_chars": max(map(len, dev)),
        "windows": {},
    }
    whole = labels[names[0]]
    for name in names:
        by: dict[str, list[float]] = {}
        for t, m in zip(texts, ms[name], strict=True):
            by.setdefault(bucket(len(t)), []).append(m)
        result["windows"][name] = {
            "window": WINDOWS[name],
            "overall": percentiles(ms[name]),
            "by_chars": {b: percentiles(by[b]) for b in sorted(by, key=lambda b: int(b.split("-")[0]))},
            "dev_macro_f1": round(float(f1_score(gold, labels[name][: len(dev)], average="macro")), 4),
            "dev_decisions_changed": sum(
                a != b for a, b in zip(whole[: len(dev)], labels[name][: len(dev)], strict=True)
            ),
            "long_decisions_changed": sum(
                a != b for a, b in zip(whole[len(dev) :], labels[name][len(dev) :], strict=True)
            ),
        }
        r = result["windows"][name]
        cells = "  ".join(f"{b}: {v['p50_ms']}/{v['p95_ms']}/{v['p99_ms']}" for b, v in r["by_chars"].items())
        print(
            f"{name:11} all {r['overall']['p50_ms']}/{r['overall']['p95_ms']}/{r['overall']['p99_ms']} ms  {cells}"
            f"  dev F1 {r['dev_macro_f1']} changed {r['dev_decisions_changed']}"
            f"  long changed {r['long_decisions_changed']}"
        )
    print(f"load average {load_start} -> {load_end}")
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
