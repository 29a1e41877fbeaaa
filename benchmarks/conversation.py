"""Do conversations keep their label? Keep and switch accuracy of `TaskRouter.decide` on multi-turn requests.

First turns are public queries (the dev set, read where it lies and never copied: evaluation only); the follow-ups
are written for this test (`benchmarks/data/follow_ups.json`). A *keep* follow-up only refers back ("make it
shorter"): it must get the label the first turn was routed to. A *switch* follow-up starts a new task of a stated
label ("now write a poem about this"): it must get that label (pairs whose first turn already has it are skipped).
`benchmarks/data/follow_ups_heldout.json` was written before the refer-back word list and never used to choose
it. One run per `--follow-ups` file (both files by default), each on the same first turns, all written to one JSON
keyed by run: `tuned` (follow_ups.json), `heldout` (follow_ups_heldout.json), else the file's stem.
About 11 s on 2 cores for both files (every follow-up decided after each first turn).

    python benchmarks/conversation.py [--dev ../shared/data/dev/dev.jsonl] [--per-label 25]
        [--follow-ups FILE ...] [--json benchmarks/conversation.json]
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

from benchmarks._common import DEV, GET_DEV, require_file, stop  # noqa: E402
from routing import TaskRouter  # noqa: E402

FOLLOW_UPS = (ROOT / "benchmarks/data/follow_ups.json", ROOT / "benchmarks/data/follow_ups_heldout.json")
"""The follow-up files run by default: those the refer-back words were tuned on, and the held-out ones."""
RUN_NAMES = {"follow_ups.json": "tuned", "follow_ups_heldout.json": "heldout"}


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


def run_name(path: Path) -> str:
    """The key of a follow-up file's run in the JSON: `tuned` and `heldout` for the two committed files."""
    return RUN_NAMES.get(path.name, path.stem)


def report(name: str, result: dict) -> None:
    print(
        f"{name}: first turns {result['first_turns']}: keep accuracy {result['keep']['accuracy']:.3f} "
        f"(n={result['keep']['n']}), switch accuracy {result['switch']['accuracy']:.3f} (n={result['switch']['n']})",
        flush=True,
    )
    for kind in ("keep", "switch"):
        by = Counter((m["follow_up"], m["got"]) for m in result["misses"] if m["kind"] == kind)
        for (f, got), n in by.most_common(8):
            print(f"  {kind} miss x{n}: {f!r} -> {got}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", type=Path, default=DEV)
    ap.add_argument("--per-label", type=int, default=25)
    ap.add_argument("--config", type=Path, default=ROOT / "routing" / "configs" / "demo.yaml")
    ap.add_argument(
        "--follow-ups",
        type=Path,
        nargs="+",
        action="extend",
        help="follow-up files, one run each (repeat the option or list several); default: "
        "follow_ups.json and follow_ups_heldout.json (never used to choose the refer-back words)",
    )
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "conversation.json")
    args = ap.parse_args(argv)
    files: list[Path] = args.follow_ups or list(FOLLOW_UPS)
    require_file(args.dev, GET_DEV)
    for path in files:
        require_file(path, "follow_ups.json and follow_ups_heldout.json are in benchmarks/data/")
    require_file(args.config, "the routing configs are in routing/configs/")
    names = [run_name(path) for path in files]
    if len(set(names)) < len(names):
        stop(f"--follow-ups: two files would write the same run ({', '.join(names)}); give each a distinct name")
    follow_ups = {name: json.loads(path.read_text(encoding="utf-8")) for name, path in zip(names, files, strict=True)}
    firsts = first_turns(args.dev, args.per_label)
    runs: dict[str, dict] = {}
    with TaskRouter(args.config) as tr:
        for name, fu in follow_ups.items():
            result = measure(tr, firsts, fu)
            report(name, result)
            runs[name] = {k: v for k, v in result.items() if k != "misses"}
    args.json.write_text(json.dumps(runs, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
