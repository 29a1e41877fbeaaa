"""Do conversations keep their label? Keep and switch accuracy of `TaskRouter.decide` on multi-turn requests.

First turns are public queries (the dev set, read where it lies and never copied: evaluation only); the follow-ups
are written for this test (`benchmarks/data/follow_ups.json`). A *keep* follow-up only refers back ("make it
shorter"): it must get the label the first turn was routed to. A *switch* follow-up starts a new task of a stated
label ("now write a poem about this"): it must get that label (pairs whose first turn already has it are skipped).
Several minutes on 2 cores (every follow-up decided after each first turn).

    python benchmarks/conversation.py [--dev ../shared/data/dev/dev.jsonl] [--per-label 25] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import DEV, GET_DEV, require_file  # noqa: E402
from routing import TaskRouter  # noqa: E402


def first_turns(dev: Path, per_label: int, seed: int = 0) -> list[str]:
    rows = [json.loads(line) for line in dev.open(encoding="utf-8") if line.strip()]
    rng = random.Random(seed)
    rng.shuffle(rows)
    picked: Counter[str] = Counter()
    out = []
    for r in rows:
        if picked[r["label"]] < per_label and len(r["text"]) < 2_000:
            picked[r["label"]] += 1
            out.append(r["text"])
    return out


def measure(tr: TaskRouter, firsts: list[str], follow_ups: dict) -> dict:
    keep_ok = keep_n = switch_ok = switch_n = 0
    misses: list[dict] = []
    for first in firsts:
        label = tr.decide(first).label
        history = [{"role": "user", "content": first}, {"role": "assistant", "content": "(answer)"}]
        for f in follow_ups["keep"]:
            got = tr.decide(f, history).label
            keep_n += 1
            keep_ok += got == label
            if got != label:
                misses.append({"kind": "keep", "first": first[:80], "follow_up": f, "want": label, "got": got})
        for target, texts in follow_ups["switch"].items():
            if target == label:
                continue
            for f in texts:
                got = tr.decide(f, history).label
                switch_n += 1
                switch_ok += got == target
                if got != target:
                    misses.append({"kind": "switch", "first": first[:80], "follow_up": f, "want": target, "got": got})
    return {
        "first_turns": len(firsts),
        "keep": {"n": keep_n, "accuracy": keep_ok / keep_n},
        "switch": {"n": switch_n, "accuracy": switch_ok / switch_n},
        "misses": misses,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", type=Path, default=DEV)
    ap.add_argument("--per-label", type=int, default=25)
    ap.add_argument("--config", type=Path, default=ROOT / "routing" / "configs" / "demo.yaml")
    ap.add_argument(
        "--follow-ups",
        type=Path,
        default=ROOT / "benchmarks" / "data" / "follow_ups.json",
        help="follow_ups.json, or follow_ups_heldout.json (never used to choose the refer-back words)",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    require_file(args.dev, GET_DEV)
    require_file(args.follow_ups, "follow_ups.json and follow_ups_heldout.json are in benchmarks/data/")
    require_file(args.config, "the routing configs are in routing/configs/")
    follow_ups = json.loads(args.follow_ups.read_text())
    with TaskRouter(args.config) as tr:
        result = measure(tr, first_turns(args.dev, args.per_label), follow_ups)
    print(
        f"first turns {result['first_turns']}: keep accuracy {result['keep']['accuracy']:.3f} "
        f"(n={result['keep']['n']}), switch accuracy {result['switch']['accuracy']:.3f} (n={result['switch']['n']})"
    )
    for kind in ("keep", "switch"):
        by = Counter((m["follow_up"], m["got"]) for m in result["misses"] if m["kind"] == kind)
        for (f, got), n in by.most_common(8):
            print(f"  {kind} miss x{n}: {f!r} -> {got}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
