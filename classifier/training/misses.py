"""What an evaluation got wrong: every misclassified query, and accuracy per group (e.g. per data source)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from ..results import Decision

__all__ = ["accuracy_by", "misclassified", "write_jsonl"]


def misclassified(
    texts: Sequence[str], truth: Sequence[str], decisions: Sequence[Decision], sources: Sequence[str] | None = None
) -> list[dict]:
    """One record per wrong decision: text, gold and predicted label, deciding stage, confidence, escalated."""
    rows = []
    for i, (text, gold, d) in enumerate(zip(texts, truth, decisions, strict=True)):
        if d.label != gold:
            row = {
                "text": text,
                "gold": gold,
                "predicted": d.label,
                "stage": d.stage,
                "confidence": d.confidence,
                "escalated": d.escalated,
            }
            if sources is not None:
                row["source"] = sources[i]
            rows.append(row)
    return rows


def accuracy_by(groups: Sequence[str], truth: Sequence[str], pred: Sequence[str]) -> dict[str, dict[str, float]]:
    """{group: {"n", "accuracy"}} for each group, sorted by name."""
    n: dict[str, int] = defaultdict(int)
    right: dict[str, int] = defaultdict(int)
    for g, y, p in zip(groups, truth, pred, strict=True):
        n[g] += 1
        right[g] += y == p
    return {g: {"n": n[g], "accuracy": right[g] / n[g]} for g in sorted(n)}


def write_jsonl(rows: Sequence[dict], path: str | Path) -> Path:
    """Write records as UTF-8 JSONL; returns the path."""
    p = Path(path)
    with p.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return p
