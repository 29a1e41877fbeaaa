"""Load test through the real LiteLLM Proxy with the taskrouter hook, in front of the local fake provider.

Starts `tests/fake_provider.py` and `litellm --config examples/proxy/config.yaml` (the hook included) on free
ports, then sends chat requests at a fixed concurrency with `openai.AsyncOpenAI`:
  1. `model="auto"` (the cascade picks the pool) against `model="fast"` (a pool named directly), in alternating
     rounds so that both see the same machine load;
  2. `model="auto"` with one pool's deployment answering HTTP 500 and another's HTTP 429: every request must
     still be answered (by the fallbacks).

About 2 min on 2 cores: the committed load_proxy.json's bursts took 20 s (auto) and 21 s (direct) at about 30
requests/s, and 30 s with two pools failing; starting the proxy and the warm-up bursts come on top.

    python benchmarks/load_proxy.py [--concurrency 16] [--requests 600] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fake_provider import FakeProvider  # noqa: E402
from tests.integration.servers import litellm_proxy  # noqa: E402

KEY = "sk-load-test-master"


async def burst(client, model: str, texts: list[str], n: int, concurrency: int) -> dict:
    """Send `n` requests, `concurrency` at a time; count answers and failures, time the whole burst."""
    sem = asyncio.Semaphore(concurrency)
    ok = failed = 0
    pools: dict[str, int] = {}

    async def one(i: int) -> None:
        nonlocal ok, failed
        async with sem:
            try:
                raw = await client.chat.completions.with_raw_response.create(
                    model=model, messages=[{"role": "user", "content": texts[i % len(texts)]}]
                )
                raw.parse()
                group = raw.headers.get("x-litellm-model-group", "?")
                pools[group] = pools.get(group, 0) + 1
                ok += 1
            except Exception:
                failed += 1

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - start
    return {
        "model": model,
        "requests": n,
        "answered": ok,
        "failed": failed,
        "seconds": wall,
        "rps": n / wall,
        "served_by": pools,
    }


async def run(args) -> dict:
    import openai

    texts = [json.loads(line)["text"] for line in (ROOT / "tests" / "data" / "probe_queries.jsonl").open()]
    fake = FakeProvider()
    with tempfile.TemporaryDirectory(prefix="taskrouter-load-") as tmp:
        work = Path(tmp)
        shutil.copy(ROOT / "examples" / "proxy" / "config.yaml", work / "config.yaml")
        shutil.copy(ROOT / "examples" / "proxy" / "taskrouter_hook.py", work / "taskrouter_hook.py")
        env: dict[str, str | None] = {
            "UPSTREAM_API_BASE": fake.url,
            "UPSTREAM_API_KEY": "sk-fake-upstream",
            "LITELLM_MASTER_KEY": KEY,
            "PYTHONPATH": str(ROOT),
        }
        with litellm_proxy(work, env) as base:
            async with openai.AsyncOpenAI(base_url=base, api_key=KEY, max_retries=0, timeout=120) as client:
                await burst(client, "auto", texts, 64, args.concurrency)  # warm-up: loads the cascade
                await burst(client, "fast", texts, 64, args.concurrency)
                rounds = {"auto": [], "fast": []}
                per_round = args.requests // args.rounds
                for _ in range(args.rounds):
                    for model in ("auto", "fast"):
                        rounds[model].append(await burst(client, model, texts, per_round, args.concurrency))
                fake.set(**{"math-a": {"mode": "500"}, "code-a": {"mode": "429", "retry_after": 0}})
                failing = await burst(client, "auto", texts, args.requests, args.concurrency)
                fake.reset()
    fake.close()
    summary = {}
    for model, rs in rounds.items():
        n = sum(r["requests"] for r in rs)
        summary[model] = {
            "requests": n,
            "answered": sum(r["answered"] for r in rs),
            "rps": n / sum(r["seconds"] for r in rs),
        }
    return {
        "concurrency": args.concurrency,
        "load_average": os.getloadavg(),
        "auto": summary["auto"],
        "direct": summary["fast"],
        "auto_vs_direct": summary["auto"]["rps"] / summary["fast"]["rps"],
        "two_pools_failing": failing,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result = asyncio.run(run(args))
    a, d, f = result["auto"], result["direct"], result["two_pools_failing"]
    print(f"concurrency {args.concurrency}, load average {result['load_average']}")
    print(f"auto   : {a['answered']}/{a['requests']} answered, {a['rps']:.1f} rps")
    print(f"direct : {d['answered']}/{d['requests']} answered, {d['rps']:.1f} rps")
    print(f"auto / direct throughput: {result['auto_vs_direct']:.1%}")
    print(
        f"auto with math-a 500 and code-a 429: {f['answered']}/{f['requests']} answered, {f['failed']} failed, "
        f"served by {f['served_by']}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
