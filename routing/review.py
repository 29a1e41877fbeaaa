"""The review loop: export uncertain requests for labeling, merge the labels back into training data."""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classifier.atomic import replaced
from classifier.data import MAX_QUERY_CHARS, check_label, check_query, load_dataset, read_jsonl
from classifier.errors import DataError, LabelError, QueryError
from classifier.normalize import fold

from .telemetry import redact

__all__ = ["ImportSummary", "count_excluded", "export_for_review", "import_reviewed"]


def export_for_review(
    events: Sequence[dict[str, Any]],
    out: str | Path,
    *,
    n: int = 200,
    low_confidence: float = 0.8,
    seed: int = 0,
    exclude_texts: Iterable[str] = (),
) -> int:
    """Write a label-stratified sample of escalated, held-back or low-confidence requests (with stored text) as
    JSONL; a request whose text is among `exclude_texts` (e.g. the training file's: compared as stored, redacted,
    and folded as `import_reviewed` compares) is skipped."""
    excluded = _stored_keys(exclude_texts)
    pool: dict[str, list[dict]] = defaultdict(list)
    for key, e in _uncertain(events, low_confidence).items():
        if key not in excluded:
            pool[str(e.get("label"))].append(e)
    rng = random.Random(seed)
    for items in pool.values():
        rng.shuffle(items)
    picked: list[dict] = []
    while len(picked) < n and any(pool.values()):
        for label in sorted(pool):  # round-robin over predicted labels: every label gets reviewed
            if pool[label] and len(picked) < n:
                picked.append(pool[label].pop())
    out = Path(out)
    if out.is_file() and any(row.get("label") is not None for _, row in _existing_rows(out)):
        raise DataError("holds reviewed labels: import them first (taskrouter review import), or export elsewhere",
                        path=str(out))  # fmt: skip

    with replaced(out) as f:  # the query texts stay private to their owner (0600)
        for e in picked:
            row = {"request_id": e["request_id"], "text": e["query_text"], "predicted": e["label"],
                   "stage": e["stage"], "confidence": e["confidence"], "label": None}  # fmt: skip
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(picked)


def count_excluded(
    events: Sequence[dict[str, Any]], exclude_texts: Iterable[str], *, low_confidence: float = 0.8
) -> int:
    """How many of the requests `export_for_review` chooses from it skips for `exclude_texts`."""
    excluded = _stored_keys(exclude_texts)
    return sum(key in excluded for key in _uncertain(events, low_confidence))


def _stored_keys(texts: Iterable[str]) -> set[str]:
    """`texts` as telemetry stores a request's text (redacted: an e-mail address reads `[email]`), then folded as
    `import_reviewed` compares: a training row with an address in it still matches its stored request."""
    return {fold(redact(t)) for t in texts}


def _uncertain(events: Sequence[dict[str, Any]], low_confidence: float) -> dict[str, dict[str, Any]]:
    """The first escalated, held-back or low-confidence event with stored text of each text, by its folded text."""
    found: dict[str, dict[str, Any]] = {}
    for e in events:
        text = e.get("query_text")
        uncertain = (
            e.get("escalated")
            or e.get("held_back")
            or (e.get("confidence") is not None and e["confidence"] < low_confidence)
        )
        if text and uncertain:
            found.setdefault(fold(text), e)
    return found


def _existing_rows(path: Path) -> list[tuple[int, dict]]:
    """The rows of the file an export would replace. One that cannot be read whole (a malformed line, e.g. a
    reviewer's trailing comma, a byte that is not UTF-8, no permission) may still hold labels: it is a DataError
    naming the line, never overwritten."""
    keep = "it may hold reviewed labels, so it is not overwritten: fix it, or export elsewhere"
    try:
        return read_jsonl(path)
    except DataError as exc:
        where = ":".join(str(p) for p in (exc.path, exc.line) if p is not None)
        raise DataError(f"{str(exc).removeprefix(f'{where}: ')}; {keep}", path=exc.path, line=exc.line) from None
    except OSError as exc:
        raise DataError(f"cannot be read ({exc.strerror}); {keep}", path=str(path)) from None


@dataclass
class ImportSummary:
    added: int = 0
    duplicates: int = 0
    unlabeled: int = 0
    conflicts: list[dict] = field(default_factory=list)


def import_reviewed(
    reviewed: str | Path, training: str | Path, *, out: str | Path | None = None, new_labels: bool = False
) -> ImportSummary:
    """Append reviewed rows that carry a label to a training JSONL or CSV; duplicates skipped, conflicts reported.

    Every row is checked before anything is written: a text the training file could not load, or (unless
    `new_labels`) a label the training data does not have, e.g. a typo, is a DataError naming the line. The file
    is replaced whole (written next to it, then renamed), so a failed import leaves it as it was.
    """
    train = load_dataset(training)
    labels = None if new_labels else set(train.labels)
    known = {fold(t): y for t, y in zip(train.texts, train.labels, strict=True)}
    summary = ImportSummary()
    new_rows: list[dict] = []
    for line_no, row in read_jsonl(Path(reviewed)):
        text, label = row.get("text"), row.get("label")
        if label is None:
            summary.unlabeled += 1
            continue
        try:
            text = check_query(text, field="text", max_chars=MAX_QUERY_CHARS)
        except QueryError as exc:
            raise DataError(str(exc), path=str(reviewed), line=line_no, field="text") from None
        try:
            label = check_label(label, allowed=labels)
        except LabelError as exc:  # a typo would start a label of one row
            hint = "" if new_labels else " (new_labels=True, or --new-labels, adds a label on purpose)"
            raise DataError(f"{exc}{hint}", path=str(reviewed), line=line_no, field="label") from None
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
    original = Path(training).read_bytes()

    with replaced(target, mode_of=training) as f:  # a failure part-way leaves the training file as it was
        f.write(original.decode("utf-8"))
        if original and not original.endswith((b"\n", b"\r")):
            f.write("\n")
        if target.suffix.lower() == ".csv":  # the training file's own format, in its header's column order
            writer = csv.DictWriter(f, fieldnames=_csv_header(Path(training)), extrasaction="ignore", restval="")
            writer.writerows(new_rows)
        else:
            for r in new_rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    summary.added = len(new_rows)
    return summary


def _csv_header(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return next(csv.reader(f))
