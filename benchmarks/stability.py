"""Label stability: the share of dev queries whose label flips under typos, case changes or extra whitespace.

Perturbations (seeded): `swap` (two adjacent letters swapped in 1-2 words), `drop` (a letter dropped in 1-2 words),
`case` (upper-cased, lower-cased or title-cased), `space` (doubled spaces, a leading and a trailing newline).
The dev set is read where it lies (evaluation only). Also reports what the classifier window
(classifier.window) changes on dev: decisions on the windowed text against the full text. Several minutes on 2
cores (the dev set classified six times).

    python benchmarks/stability.py [--dev ../shared/data/dev/dev.jsonl] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import DEV, GET_DEV, require_file  # noqa: E402
from classifier.serving.cascade import Cascade  # noqa: E402
from classifier.window import window  # noqa: E402


def _words(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"[A-Za-z]{4,}", text)]


def swap(text: str, rng: random.Random) -> str:
    spans = _words(text)
    for a, b in rng.sample(spans, min(len(spans), rng.randint(1, 2))):
        i = rng.randrange(a, b - 1)
        text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return text


def drop(text: str, rng: random.Random) -> str:
    spans = sorted(rng.sample(_words(text), min(len(_words(text)), rng.randint(1, 2))), reverse=True)
    for a, b in spans:
        i = rng.randrange(a, b)
        text = text[:i] + text[i + 1 :]
    return text


def case(text: str, rng: random.Random) -> str:
    return rng.choice([str.upper, str.lower, str.title])(text)


def space(text: str, rng: random.Random) -> str:
    return "\n " + text.replace(" ", "  ") + " \n"


PERTURBATIONS = {"swap": swap, "drop": drop, "case": case, "space": space}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", type=Path, default=DEV)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    require_file(args.dev, GET_DEV)
    rows = [json.loads(line) for line in args.dev.open(encoding="utf-8") if line.strip()]
    texts = [r["text"] for r in rows]
    cascade = Cascade.load(cache_size=0, window=None)  # whole texts, to see what the window changes
    base = [d.label for d in cascade.classify_batch(texts)]
    result: dict = {"n": len(texts), "flip_rate": {}}
    for name, perturb in PERTURBATIONS.items():
        rng = random.Random(0)
        changed = [perturb(t, rng) for t in texts]
        labels = [d.label for d in cascade.classify_batch(changed)]
        flips = sum(a != b for a, b in zip(base, labels, strict=True))
        result["flip_rate"][name] = flips / len(texts)
        print(f"{name:6} flips {flips:4d} / {len(texts)} = {flips / len(texts):.2%}")
    windowed = [window(t) for t in texts]
    touched = sum(w != t for w, t in zip(windowed, texts, strict=True))
    labels = [d.label for d in cascade.classify_batch(windowed)]
    diff = sum(a != b for a, b in zip(base, labels, strict=True))
    result["window"] = {"texts_cut": touched, "labels_changed": diff}
    print(f"window: {touched} dev texts longer than the window, {diff} labels changed")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
