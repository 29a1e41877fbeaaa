"""Benchmark the classifier cascade and the routed completion path; writes results.json and results.md here.

    python benchmarks/run.py            # the full run (a few minutes on 2 cores)
    python benchmarks/run.py --quick    # fewer queries, for a smoke test

What it measures, all on this machine at run time (nothing is hard-coded):

* single-query latency p50/p95/p99 per path: a keyword-rule hit; stage 2 with the ONNX fp32 and ONNX int8
  graphs of the encoder the shipped model reads (and sentence-transformers on torch, for a base-encoder model),
  and with the static stage in front of ONNX (the shipped default), split by the stage that decided; a
  decision-cache hit. Paths are timed round-robin, query by query, so background load on a shared machine falls
  on all of them alike. Stage-2 queries come from the dev set when it exists: the static stage
  is more confident on the queries it was trained on, so training queries would flatter it;
* batch throughput (queries/s) of `classify_batch` at batch sizes 1, 32 and 256, per embedder;
* cold start in a fresh process: interpreter start → imports → model load → first decision, with and without
  torch, and the peak RSS of that process after a few hundred decisions;
* accuracy of the shipped cascade on ../shared/data/dev/dev.jsonl with each embedder (macro-F1, agreement with
  the reference path: torch for a base-encoder model, the fp32 graph for a tuned one), skipped with a note when
  the file is missing;
* route_and_complete overhead: the same requests through a bare LiteLLM Router and through TaskRouter against
  the local fake provider (tests/fake_provider.py), with classification timed on its own, so the "added beyond
  classification" figure is what routing itself costs.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT / "data" / "queries.jsonl"
DEV = ROOT.parent / "shared" / "data" / "dev" / "dev.jsonl"
PATHS = {
    "torch": ("torch", False),
    "onnx": ("onnx", False),
    "onnx-int8": ("onnx-int8", False),
    "static+onnx": ("onnx", True),
    "static+onnx-int8": ("onnx-int8", True),
    "static@0.95+onnx": ("onnx", 0.95),
}
"""Path name -> (MiniLM backend, static stage: off, on, or on at this threshold instead of the trained one).
"static+onnx" is what `Cascade.load()` serves by default; "static@0.95" is a lower static threshold, for its
speed/accuracy trade. The torch path exists for a base-encoder model only: a tuned encoder ships as ONNX alone."""
FIRST_QUERY = "Tell me about the history of jazz"


# -- helpers ---------------------------------------------------------------------------------------------------
def _stats(seconds: list[float]) -> dict:
    import numpy as np

    ms = np.asarray(seconds) * 1000
    return {
        "n": int(ms.size),
        "mean_ms": float(ms.mean()),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def _queries() -> list[str]:
    return [json.loads(line)["text"] for line in DATA.open(encoding="utf-8")]


def _unseen_queries() -> tuple[list[str], str]:
    """Queries the shipped model was not trained on (the dev set) when available, else the training data."""
    if DEV.is_file():
        return [json.loads(line)["text"] for line in DEV.open(encoding="utf-8")], f"{DEV.name} (not trained on)"
    return _queries(), "data/queries.jsonl (trained on: flatters the static stage; no dev set here)"


def _spread(items: list, n: int) -> list:
    step = max(1, len(items) // n)
    return items[::step][:n]


@functools.cache
def _encoder() -> str:
    """The encoder the shipped model was trained with ("base" or "tuned"): every path serves that one (read once:
    `load_manifest` hashes every model file)."""
    from classifier.model_files import load_manifest

    return str(load_manifest()[1].params.get("encoder", "base"))


def _paths() -> list[str]:
    """The paths this model can be served on (torch only for the base encoder)."""
    return [p for p, (backend, _) in PATHS.items() if backend != "torch" or _encoder() == "base"]


def _reference() -> str:
    """The path the others are compared with: sentence-transformers for the base encoder, else its fp32 graph."""
    return "torch" if "torch" in _paths() else "onnx"


def _cascade(path: str, *, cache_size: int = 0):
    """The shipped cascade on `path` with its own MiniLM embedder (text cache off, so nothing is reused)."""
    from classifier.serving.cascade import Cascade
    from classifier.serving.embedding import MiniLMEmbedder
    from classifier.serving.onnx_embedding import OnnxMiniLMEmbedder

    backend, static = PATHS[path]
    encoder = _encoder()
    if backend == "torch" and encoder != "base":
        raise SystemExit(f"path {path!r}: the {encoder} encoder ships as ONNX only")
    cascade = Cascade.load(
        cache_size=cache_size, static=bool(static), static_threshold=static if isinstance(static, float) else None
    )
    if static and cascade.static is None:
        raise SystemExit(f"path {path!r} needs the static stage, which is off here (see the warning above)")
    embedder = (
        MiniLMEmbedder(cache_size=0)
        if backend == "torch"
        else OnnxMiniLMEmbedder(encoder=encoder, quantize=backend == "onnx-int8", cache_size=0).load()
    )
    if embedder.id != cascade.classifier.embedder.id:
        raise SystemExit(f"path {path!r} would read {embedder.id}, the model reads {cascade.classifier.embedder.id}")
    cascade.classifier.embedder = embedder
    cascade.classifier.progress = False
    return cascade


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def machine() -> dict:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024**2
    except (OSError, ValueError, IndexError):
        pass
    import torch

    from classifier.serving.onnx_embedding import _default_threads

    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": round(mem, 1) if mem else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "onnxruntime_threads": _default_threads(),
        "versions": {
            d: _version(d)
            for d in (
                "taskrouter",
                "torch",
                "sentence-transformers",
                "transformers",
                "onnxruntime",
                "onnx",
                "tokenizers",
                "numpy",
                "scikit-learn",
                "litellm",
            )
        },
    }


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []


# -- 1. single-query latency ---------------------------------------------------------------------------------------
def single_query_latency(n: int) -> dict:
    from classifier.serving.cascade import Cascade

    rules = Cascade.load().rules
    unseen, source = _unseen_queries()
    heuristic = _spread([t for t in _queries() if rules.classify(t).label is not None], n)
    stage2 = _spread([t for t in unseen if rules.classify(t).label is None], n)

    paths = {p: _cascade(p) for p in _paths()}
    cached = _cascade("static+onnx", cache_size=len(stage2) + 10)
    for cascade in (*paths.values(), cached):
        cascade.classify_batch(stage2[:8])  # warm up: first-call allocations, lazy loads
    cached.classify_batch(stage2)  # fills the decision cache

    wall: dict[str, list[float]] = {f"stage2_{p}": [] for p in paths}
    stage: dict[str, list[float]] = {f"stage2_{p}": [] for p in paths}
    decided_by: dict[str, list[str]] = {f"stage2_{p}": [] for p in paths}
    wall["heuristic_hit"], wall["cache_hit"], wall["cache_hit_interleaved"] = [], [], []
    for q in stage2:
        for p, cascade in paths.items():
            t = time.perf_counter()
            d = cascade.classify(q)
            wall[f"stage2_{p}"].append(time.perf_counter() - t)
            stage[f"stage2_{p}"].append(sum(s.latency_s for s in d.trail if s.stage in ("static", "embedding")))
            decided_by[f"stage2_{p}"].append(d.stage)
        t = time.perf_counter()
        cached.classify(q)
        wall["cache_hit_interleaved"].append(time.perf_counter() - t)  # right after embedding work: cold CPU caches
    for q in stage2:
        t = time.perf_counter()
        cached.classify(q)
        wall["cache_hit"].append(time.perf_counter() - t)
    onnx = paths["onnx"]
    for q in heuristic:
        t = time.perf_counter()
        onnx.classify(q)
        wall["heuristic_hit"].append(time.perf_counter() - t)
    info = cached.cache_info()
    out = {name: _stats(v) for name, v in wall.items()}
    for name, v in stage.items():
        out[name]["stage2_only"] = _stats(v)  # static and/or MiniLM head, as the decision's trail records it
        by = decided_by[name]
        for who in sorted(set(by)):
            picked = [w for w, b in zip(wall[name], by, strict=True) if b == who]
            out[name][f"decided_by_{who}"] = {**_stats(picked), "share": len(picked) / len(by)}
    out["cache_hit"]["cache_info"] = info._asdict()
    out["stage2_queries"] = source
    return out


# -- 2. batch throughput --------------------------------------------------------------------------------------------
def batch_throughput(n: int, sizes=(1, 32, 256)) -> dict:
    unseen, source = _unseen_queries()
    texts = _spread(unseen, n)
    out: dict = {"n_queries": len(texts), "note": f"a spread of {source}, rule hits included"}
    for b in _paths():
        cascade = _cascade(b)
        cascade.classify_batch(texts[:32])
        out[b] = {}
        for size in sizes:
            t = time.perf_counter()
            for i in range(0, len(texts), size):
                cascade.classify_batch(texts[i : i + size])
            out[b][f"batch_{size}"] = {"queries_per_s": len(texts) / (time.perf_counter() - t)}
    return out


# -- 3. cold start and memory ---------------------------------------------------------------------------------------
def _peak_rss_mib() -> float | None:
    """This process's peak resident set (VmHWM; unlike ru_maxrss it does not carry the parent's over exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def _cold_start_child(n_after: int) -> None:
    """Runs in a fresh interpreter: print when each step ended, and the peak RSS."""
    t_main = time.time()
    from classifier.serving.cascade import Cascade
    from classifier.serving.embedding import serving_embedder

    t_imported = time.time()
    cascade = Cascade.load(cache_size=0, static=os.environ.get("TASKROUTER_BENCH_STATIC") == "1")
    embedder = serving_embedder(cascade.manifest.get("params", {}).get("encoder", "base"))  # the one it reads
    getattr(embedder, "load", lambda: None)()
    t_loaded = time.time()
    cascade.classify(FIRST_QUERY)
    t_first = time.time()
    rss_first = _peak_rss_mib()
    for q in _spread(_queries(), n_after):
        cascade.classify(q)
    print(
        json.dumps(
            {
                "t_main": t_main,
                "t_imported": t_imported,
                "t_loaded": t_loaded,
                "t_first": t_first,
                "backend": getattr(embedder, "backend", "?"),
                "torch_imported": "torch" in sys.modules,
                "peak_rss_mib_first_decision": rss_first,
                "peak_rss_mib_after": _peak_rss_mib(),
                "decisions_after": n_after,
            }
        )
    )


def cold_start(repeats: int, n_after: int) -> dict:
    import numpy as np

    out: dict = {
        "note": "wall time from spawning `python` to the end of each step; median of the runs; the model "
        "files are in the page cache after the first run"
    }
    for b, (backend, static) in PATHS.items():
        if isinstance(static, float) or b not in _paths():
            continue  # starts like the same path at its trained threshold
        runs = []
        for _ in range(repeats):
            env = {
                **os.environ,
                "TASKROUTER_EMBEDDER": backend,
                "TASKROUTER_BENCH_STATIC": "1" if static else "0",
                "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
            }
            t0 = time.time()
            done = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--cold-start-child", str(n_after)],
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
                check=True,
            )
            r = json.loads(done.stdout.strip().splitlines()[-1])
            runs.append(
                {
                    "interpreter_s": r["t_main"] - t0,
                    "imports_s": r["t_imported"] - r["t_main"],
                    "model_load_s": r["t_loaded"] - r["t_imported"],
                    "first_decision_s": r["t_first"] - r["t_loaded"],
                    "total_s": r["t_first"] - t0,
                    "torch_imported": r["torch_imported"],
                    "backend": r["backend"],
                    "peak_rss_mib_first_decision": r["peak_rss_mib_first_decision"],
                    "peak_rss_mib_after": r["peak_rss_mib_after"],
                }
            )
        keys = [k for k in runs[0] if k.endswith("_s") or k.startswith("peak_rss")]
        out[b] = {k: float(np.median([r[k] for r in runs])) for k in keys}
        out[b].update(
            torch_imported=runs[0]["torch_imported"],
            backend=runs[0]["backend"],
            runs=len(runs),
            decisions_after=n_after,
        )
    return out


# -- 4. accuracy on the dev set -------------------------------------------------------------------------------------
def dev_accuracy() -> dict:
    if not DEV.is_file():
        return {"skipped": f"{DEV} not found"}
    from sklearn.metrics import accuracy_score, f1_score

    rows = [json.loads(line) for line in DEV.open(encoding="utf-8")]
    texts, truth = [r["text"] for r in rows], [r["label"] for r in rows]
    out: dict = {"file": str(DEV), "n": len(texts)}
    decisions = {}
    for b in _paths():
        cascade = _cascade(b)
        t = time.perf_counter()
        decisions[b] = cascade.classify_batch(texts)
        pred = [d.label for d in decisions[b]]
        out[b] = {
            "macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0)),  # as `taskrouter evaluate`
            "accuracy": float(accuracy_score(truth, pred)),
            "escalation_rate": sum(d.escalated for d in decisions[b]) / len(texts),
            "static_coverage": sum(d.stage == "static" for d in decisions[b]) / len(texts),
            "seconds": time.perf_counter() - t,
        }
    ref = out["reference"] = _reference()
    for b in _paths():
        if b == ref:
            continue
        pairs = list(zip(decisions[ref], decisions[b], strict=True))
        out[b]["label_agreement_with_reference"] = sum(x.label == y.label for x, y in pairs) / len(pairs)
        out[b]["decision_agreement_with_reference"] = sum(
            (x.label, x.stage, x.escalated) == (y.label, y.stage, y.escalated) for x, y in pairs
        ) / len(pairs)
    return out


# -- 5. route_and_complete overhead ---------------------------------------------------------------------------------
def routing_overhead(n: int) -> dict:
    import logging

    import litellm

    from routing import TaskRouter, route_and_complete
    from tests.fake_provider import FakeProvider

    logging.getLogger("LiteLLM").setLevel(logging.CRITICAL)
    logging.getLogger("LiteLLM Router").setLevel(logging.CRITICAL)
    fake = FakeProvider()
    try:
        pools = ("fast", "math", "code", "creative")
        model_list = [
            {
                "model_name": p,
                "model_info": {"id": f"{p}-a-id"},
                "litellm_params": {"model": f"openai/{p}-a", "api_base": fake.url, "api_key": "sk-fake-bench"},
            }
            for p in pools
        ]
        settings = {"num_retries": 0, "timeout": 10}
        config = {
            "model_list": model_list,
            "router_settings": settings,
            "taskrouter": {"pools": {"math": "math", "code": "code", "creative": "creative"}, "default_pool": "fast"},
        }
        texts = _spread(_queries(), n)
        bare = litellm.Router(model_list=model_list, **settings)
        out: dict = {
            "n_requests": len(texts),
            "provider": "tests/fake_provider.py on 127.0.0.1",
            "note": "requests alternate bare/routed, query by query; the decision cache is off unless "
            "named; 'classification' is TaskRouter.decide() timed on its own for the same queries",
        }
        for name, path, cache_size in (
            ("static+onnx", "static+onnx", 0),
            ("onnx", "onnx", 0),
            ("onnx-int8", "onnx-int8", 0),
            ("torch", "torch", 0),
            ("static+onnx_cache_hits", "static+onnx", 10_000),
        ):
            if path not in _paths():
                continue
            tr = TaskRouter(config, cascade=_cascade(path, cache_size=cache_size))
            pool = {t: tr.pool_for(tr.decide(t).label) for t in texts}  # warm-up; fills the cache if it is on
            for t in texts[:5]:
                bare.completion(model=pool[t], messages=[{"role": "user", "content": t}])
                route_and_complete(t, config=tr)
            bare_s, routed_s, classify_s = [], [], []
            for t in texts:
                start = time.perf_counter()
                bare.completion(model=pool[t], messages=[{"role": "user", "content": t}])
                bare_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                route_and_complete(t, config=tr)
                routed_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                tr.decide(t)
                classify_s.append(time.perf_counter() - start)
            b, r, c = _stats(bare_s), _stats(routed_s), _stats(classify_s)
            out[name] = {
                "bare_router": b,
                "taskrouter": r,
                "classification": c,
                "ratio_mean": r["mean_ms"] / b["mean_ms"],
                "ratio_p50": r["p50_ms"] / b["p50_ms"],
                "added_ms_mean": r["mean_ms"] - b["mean_ms"],
                "added_ms_p50": r["p50_ms"] - b["p50_ms"],
                "added_beyond_classification_ms_mean": r["mean_ms"] - b["mean_ms"] - c["mean_ms"],
            }
            tr.close()
        return out
    finally:
        fake.close()


# -- report ---------------------------------------------------------------------------------------------------------
def to_markdown(res: dict) -> str:
    m = res["machine"]
    lines = [
        "# taskrouter benchmarks",
        "",
        f"Measured {res['started']} by `python benchmarks/run.py{' --quick' if res['quick'] else ''}` "
        f"in {res['seconds']:.0f} s. Load average at start {res['load_start']}, at end {res['load_end']}: "
        "on a shared machine, compare paths within one run, not across runs.",
        "",
        f"* CPU: {m['cpu']}, {m['usable_cpus']} usable of {m['logical_cpus']} logical CPUs, "
        f"{m['memory_gib']} GiB; Python {m['python']}; {m['platform']}",
        f"* threads: torch {m['torch_threads']}, onnxruntime intra-op {m['onnxruntime_threads']}",
        "* " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v),
        "",
    ]
    lat = res["single_query_latency"]
    lines += [
        "## Single-query latency (ms, one `classify()` call)",
        "",
        f"Stage-2 paths: queries past the keyword rules from {lat['stage2_queries']}; `static+…` paths put the "
        "static stage in front of MiniLM and are split by the stage that decided.",
        "",
        "| path | n | p50 | p95 | p99 | stage 2 alone p50 | decided by static: share, p50 | by MiniLM: share, p50 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in lat.items():
        if not isinstance(s, dict):
            continue
        extra = f"{s['stage2_only']['p50_ms']:.2f}" if "stage2_only" in s else ""
        split = [
            f"{s[k]['share']:.0%}, {s[k]['p50_ms']:.2f}" if k in s else ""
            for k in ("decided_by_static", "decided_by_embedding")
        ]
        lines.append(
            f"| {name} | {s['n']} | {s['p50_ms']:.2f} | {s['p95_ms']:.2f} | {s['p99_ms']:.2f} | {extra} | "
            + " | ".join(split)
            + " |"
        )
    thr = res["batch_throughput"]
    paths = [p for p in PATHS if p in thr]
    sizes = list(thr[paths[0]])
    lines += [
        "",
        f"## Batch throughput (queries/s, `classify_batch`, {thr['n_queries']} queries; {thr['note']})",
        "",
        "| path | " + " | ".join(s.replace("_", " ") for s in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for b in paths:
        lines.append(f"| {b} | " + " | ".join(f"{thr[b][s]['queries_per_s']:.0f}" for s in sizes) + " |")
    cs = res["cold_start"]
    lines += [
        "",
        f"## Cold start in a fresh process (s; {cs['note']})",
        "",
        "| path | interpreter | imports | model load | first decision | total | torch imported | "
        "peak RSS at first decision (MiB) | peak RSS after more decisions (MiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for b in [p for p in PATHS if p in cs]:
        r = cs[b]
        lines.append(
            f"| {b} | {r['interpreter_s']:.2f} | {r['imports_s']:.2f} | {r['model_load_s']:.2f} | "
            f"{r['first_decision_s']:.3f} | **{r['total_s']:.2f}** | {r['torch_imported']} | "
            f"{r['peak_rss_mib_first_decision']:.0f} | {r['peak_rss_mib_after']:.0f} |"
        )
    dev = res["dev_accuracy"]
    lines += ["", "## Accuracy on the dev set (shipped cascade, stage 3 off)", ""]
    if "skipped" in dev:
        lines.append(f"Skipped: {dev['skipped']}.")
    else:
        lines += [
            f"`{dev['file']}`, n = {dev['n']}.",
            "",
            f"| path | macro-F1 | accuracy | escalated | decided by static | label agreement with {dev['reference']} "
            f"| decision agreement with {dev['reference']} |",
            "|---|---|---|---|---|---|---|",
        ]
        for b in [p for p in PATHS if p in dev]:
            r = dev[b]
            agree = (
                f"{r['label_agreement_with_reference']:.4f} | {r['decision_agreement_with_reference']:.4f}"
                if "label_agreement_with_reference" in r
                else "— | —"
            )
            lines.append(
                f"| {b} | {r['macro_f1']:.4f} | {r['accuracy']:.4f} | {r['escalation_rate']:.3f} | "
                f"{r['static_coverage']:.3f} | {agree} |"
            )
    ro = res["routing_overhead"]
    lines += [
        "",
        f"## route_and_complete overhead ({ro['n_requests']} requests, {ro['provider']})",
        "",
        ro["note"] + ".",
        "",
        "| path | bare Router mean / p50 (ms) | TaskRouter mean / p50 (ms) | ratio (mean) | "
        "added mean (ms) | classification mean (ms) | added beyond classification (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in ro.items():
        if not isinstance(r, dict):
            continue
        lines.append(
            f"| {name} | {r['bare_router']['mean_ms']:.2f} / {r['bare_router']['p50_ms']:.2f} | "
            f"{r['taskrouter']['mean_ms']:.2f} / {r['taskrouter']['p50_ms']:.2f} | {r['ratio_mean']:.2f} | "
            f"{r['added_ms_mean']:.2f} | {r['classification']['mean_ms']:.2f} | "
            f"{r['added_beyond_classification_ms_mean']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer queries and runs (a smoke test)")
    parser.add_argument("--out", type=Path, default=HERE, help="directory for results.json and results.md")
    parser.add_argument("--cold-start-child", type=int, metavar="N", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cold_start_child is not None:
        _cold_start_child(args.cold_start_child)
        return 0
    sys.path.insert(0, str(ROOT))  # `tests.fake_provider` and this checkout's packages
    q = args.quick
    started, t0 = time.strftime("%Y-%m-%d %H:%M:%S %Z"), time.perf_counter()
    res: dict = {"started": started, "quick": q, "load_start": _load(), "machine": machine()}
    steps = [
        ("single_query_latency", lambda: single_query_latency(40 if q else 300)),
        ("batch_throughput", lambda: batch_throughput(128 if q else 512)),
        ("cold_start", lambda: cold_start(1 if q else 3, 50 if q else 300)),
        ("dev_accuracy", dev_accuracy),
        ("routing_overhead", lambda: routing_overhead(30 if q else 200)),
    ]
    for name, step in steps:
        t = time.perf_counter()
        print(f"{name} ...", file=sys.stderr, flush=True)
        res[name] = step()
        res[name + "_meta"] = {"seconds": time.perf_counter() - t, "load_after": _load()}
    res["load_end"], res["seconds"] = _load(), time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    (args.out / "results.md").write_text(to_markdown(res), encoding="utf-8")
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
