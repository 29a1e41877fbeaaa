"""The review loop: export uncertain requests for labeling, merge the labels back into training data."""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classifier.data import load_dataset, read_jsonl
from classifier.errors import DataError
from classifier.normalize import fold

__all__ = ["ImportSummary", "export_for_review", "import_reviewed"]


def export_for_review(
    events: Sequence[dict[str, Any]], out: str | Path, *, n: int = 200, low_confidence: float = 0.8, seed: int = 0
) -> int:
    """Write a label-stratified sample of escalated or low-confidence requests (with stored text) as JSONL."""
    pool: dict[str, list[dict]] = defaultdict(list)
    seen = set()
    for e in events:
        text = e.get("query_text")
        uncertain = e.get("escalated") or (e.get("confidence") is not None and e["confidence"] < low_confidence)
        if text and uncertain and fold(text) not in seen:
            seen.add(fold(text))
            pool[str(e.get("label"))].append(e)
    rng = random.Random(seed)
    for items in pool.values():
        rng.shuffle(items)
    picked: list[dict] = []
    while len(picked) < n and any(pool.values()):
        for label in sorted(pool):  # round-robin over predicted labels: every label gets reviewed
            if pool[label] and len(picked) < n:
                picked.append(pool[label].pop())
    with Path(out).open("w", encoding="utf-8") as f:
        for e in picked:
            f.write(
                json.dumps(
                    {
                        "request_id": e["request_id"],
                        "text": e["query_text"],
                        "predicted": e["label"],
                        "stage": e["stage"],
                        "confidence": e["confidence"],
                        "label": None,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    return len(picked)


@dataclass
class ImportSummary:
    added: int = 0
    duplicates: int = 0
    unlabeled: int = 0
    conflicts: list[dict] = field(default_factory=list)


def import_reviewed(reviewed: str | Path, training: str | Path, *, out: str | Path | None = None) -> ImportSummary:
    """Append reviewed rows that carry a label to a training JSONL; duplicates skipped, conflicts reported."""
    train = load_dataset(training)
    known = {fold(t): y for t, y in zip(train.texts, train.labels, strict=True)}
    summary = ImportSummary()
    new_rows: list[dict] = []
    for line_no, row in read_jsonl(Path(reviewed)):
        text, label = row.get("text"), row.get("label")
        if label is None:
            summary.unlabeled += 1
            continue
        if not isinstance(text, str) or not text.strip() or not isinstance(label, str) or not label.strip():
            raise DataError("text and label must be non-empty strings", path=str(reviewed), line=line_no)
        key = fold(text)
        if key in known:
            if known[key] == label:
                summary.duplicates += 1
            else:
                summary.conflicts.append(
                    {"line": line_no, "text": text[:120], "existing": known[key], "reviewed": label}
                )
            continue
        known[key] = label
        new_rows.append({"text": text, "label": label})
    target = Path(out) if out is not None else Path(training)
    if target.suffix.lower() != Path(training).suffix.lower():
        raise DataError(f"must have the training file's type ({Path(training).suffix})", path=str(target))
    if target != Path(training):
        target.write_bytes(Path(training).read_bytes())
    ends_open = target.stat().st_size > 0 and not target.read_bytes().endswith((b"\n", b"\r"))
    with target.open("a", encoding="utf-8", newline="") as f:
        if ends_open:
            f.write("\n")
        if target.suffix.lower() == ".csv":  # the training file's own format, in its header's column order
            writer = csv.DictWriter(f, fieldnames=_csv_header(target), extrasaction="ignore", restval="")
            writer.writerows(new_rows)
        else:
            for r in new_rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    summary.added = len(new_rows)
    return summary


def _csv_header(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return next(csv.reader(f))
