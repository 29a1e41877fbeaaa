"""Read labeled queries from JSONL or CSV, and validate queries before they reach a model."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import threading
import unicodedata
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import strict_json
from .errors import DataError, LabelError, QueryError
from .normalize import fold
from .window import INVISIBLE, invisible_run

__all__ = [
    "MAX_QUERY_CHARS",
    "Dataset",
    "check_label",
    "check_labels",
    "check_query",
    "check_unicode",
    "load_dataset",
    "read_jsonl",
]

MAX_QUERY_CHARS = 100_000
"""Longest text read whole: training data (a longer row is almost surely a data error) and a head's or
`TaskClassifier`'s own `predict`. `Cascade.classify` has no limit: it reads a bounded window (`classifier.window`)."""

_CSV_LIMIT_LOCK = threading.Lock()

log = logging.getLogger("taskrouter.data")


def check_query(text: object, *, field: str = "query", max_chars: int | None = None) -> str:
    """Return `text` if it is a non-blank, valid Unicode string (of at most `max_chars` characters, if given)."""
    if not isinstance(text, str):
        raise QueryError(f"must be a string, got {type(text).__name__}", field=field)
    if not text.strip():
        raise QueryError("must not be empty or whitespace", field=field)
    if max_chars is not None and len(text) > max_chars:
        raise QueryError(f"is {len(text):,} characters; the limit is {max_chars:,}", field=field)
    check_unicode(text, field=field)
    rest = text.lstrip()  # whitespace is invisible too, and lstrip skips it at C speed
    if unicodedata.category(rest[0]) in INVISIBLE and invisible_run().fullmatch(rest):
        raise QueryError("has no visible character (only control, format or space characters)", field=field)
    return text


def check_unicode(text: str, *, field: str) -> str:
    """Return `text` if it encodes as UTF-8; a lone surrogate (e.g. from a JSON "\\ud83d" escape) is a QueryError
    here rather than an encoding failure deep in an HTTP client, reported as a provider's fault."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise QueryError(f"is not valid Unicode (lone surrogate at character {exc.start})", field=field) from None
    return text


def check_label(label: object, *, allowed: Collection[str] | None = None, field: str = "label") -> str:
    """Return `label` if it is a string that is not blank (and one of `allowed`, if given); else a `LabelError`
    whose message starts with `field`."""
    if not isinstance(label, str) or not label.strip():
        raise LabelError(f"{field}: must be a non-empty string, got {label!r}")
    if allowed is not None and label not in allowed:
        raise LabelError(f"{field}: unknown label {label!r}; expected one of {sorted(allowed)}")
    return label


def check_labels(
    labels: Sequence[object], *, allowed: Iterable[str] | None = None, path: str | None = None
) -> list[str]:
    """Validate labels for training: strings, in `allowed` if given, each with at least 2 examples.

    `path`, the file the labels were read from, starts the message of a label set that cannot be trained."""
    allowed_set = set(allowed) if allowed is not None else None
    out = [check_label(label, allowed=allowed_set, field=f"label[{i}]") for i, label in enumerate(labels)]
    counts = Counter(out)
    where = f"{path}: " if path else ""
    if len(counts) < 2:
        raise LabelError(f"{where}need at least 2 distinct labels, got {sorted(counts)}")
    rare = sorted(k for k, v in counts.items() if v < 2)
    if rare:
        raise LabelError(f"{where}labels with fewer than 2 examples: {rare}")
    return out


@dataclass(frozen=True)
class Dataset:
    """Texts and their labels, in file order."""

    texts: tuple[str, ...]
    labels: tuple[str, ...]
    path: str | None = None
    sources: tuple[str, ...] | None = None
    """Each record's `source` field when the file has one ("" where a record lacks it), else None."""

    def __len__(self) -> int:
        return len(self.texts)

    def sha256(self) -> str:
        """Content hash of (text, label) pairs: the model manifest records it."""
        h = hashlib.sha256()
        for t, y in zip(self.texts, self.labels, strict=True):
            h.update(json.dumps([t, y], ensure_ascii=False).encode())
            h.update(b"\n")
        return h.hexdigest()


def load_dataset(path: str | Path, *, allowed_labels: Iterable[str] | None = None, unique: bool = True) -> Dataset:
    """Load `{"text", "label"}` records from a .jsonl or .csv file (header row `text,label`).

    `unique` (for training): a text given two labels (compared as `normalize.fold` folds it: case and spacing
    aside) is a DataError naming both lines, and a row repeating an earlier one's exact text and label is dropped,
    with a warning. Evaluation sets and recorded answers pass False: traffic repeats itself, and annotators
    disagree."""
    p = Path(path)
    if not p.is_file():
        raise DataError("file not found", path=str(p))
    suffix = p.suffix.lower()
    if suffix in {".jsonl", ".ndjson"}:
        rows = read_jsonl(p)
    elif suffix == ".csv":
        rows = _read_csv(p)
    else:
        raise DataError(f"unsupported file type {suffix!r}; use .jsonl or .csv", path=str(p))
    texts, labels, sources, lines = [], [], [], []
    allowed_set = set(allowed_labels) if allowed_labels is not None else None
    for line, row in rows:
        for key in ("text", "label"):
            if key not in row:
                raise DataError(f"missing field {key!r}", path=str(p), line=line, field=key)
        try:
            text = check_query(row["text"], field="text", max_chars=MAX_QUERY_CHARS)
        except QueryError as exc:
            raise DataError(str(exc), path=str(p), line=line, field="text") from None
        try:
            raw_label = row["label"]  # a label is read without the spaces around it, then checked
            label = check_label(raw_label.strip() if isinstance(raw_label, str) else raw_label, allowed=allowed_set)
        except LabelError as exc:
            raise DataError(str(exc), path=str(p), line=line, field="label") from None
        texts.append(text)
        labels.append(label)
        sources.append(row["source"] if isinstance(row.get("source"), str) else "")
        lines.append(line)
    if not texts:
        raise DataError("no records", path=str(p))
    keep = _unique_rows(str(p), texts, labels, lines) if unique else range(len(texts))
    texts, labels, sources = [texts[i] for i in keep], [labels[i] for i in keep], [sources[i] for i in keep]
    return Dataset(tuple(texts), tuple(labels), str(p), tuple(sources) if any(sources) else None)


def _unique_rows(path: str, texts: list[str], labels: list[str], lines: list[int]) -> list[int]:
    """Indices of the rows to keep: all but exact repeats of an earlier (text, label). Repeats would sit on both
    sides of a cross-validation split and inflate its scores; a folded text with two labels is a DataError."""
    first: dict[str, int] = {}  # folded text -> index of its first row
    seen: set[str] = set()
    keep, repeats = [], []
    for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
        j = first.setdefault(fold(text), i)
        if labels[j] != label:
            raise DataError(
                f"the same text (case and spacing aside) as line {lines[j]} has label {label!r} here and "
                f"{labels[j]!r} there",
                path=path,
                line=lines[i],
                field="label",
            )
        if text in seen:
            repeats.append(lines[i])
        else:
            seen.add(text)
            keep.append(i)
    if repeats:
        log.warning(
            "%s: dropped %d duplicate row(s), each the same text and label as an earlier row (the first at line %d)",
            path,
            len(repeats),
            repeats[0],
        )
    return keep


def read_jsonl(p: Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a malformed line is a DataError naming it."""
    rows = []
    for line, raw in enumerate(_lines(p), start=1):
        if not raw.strip():
            continue
        try:
            row = strict_json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(f"malformed JSON ({exc.msg})", path=str(p), line=line) from None
        except ValueError as exc:  # a repeated key, or nesting too deep
            raise DataError(f"malformed JSON ({exc})", path=str(p), line=line) from None
        if not isinstance(row, dict):
            raise DataError("each line must be a JSON object", path=str(p), line=line)
        rows.append((line, row))
    return rows


def _lines(p: Path) -> list[str]:
    """The file's lines decoded as UTF-8 (a leading byte-order mark, as Excel writes, is dropped)."""
    data = p.read_bytes()
    lines = data.splitlines(keepends=True)
    out = []
    for number, raw in enumerate(lines, start=1):
        try:
            out.append(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
        except UnicodeDecodeError as exc:
            raise DataError(
                f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); save the file as UTF-8",
                path=str(p),
                line=number,
            ) from None
    return out


def _read_csv(p: Path) -> list[tuple[int, dict]]:
    lines = _lines(p)
    # csv's field limit (131,072 characters by default) would turn an over-long text into "malformed CSV"; no field
    # is longer than the file, so that is the limit while it is read, and `check_query` names the real problem.
    # The limit is process-wide: the lock keeps two readers here from restoring it under each other.
    with _CSV_LIMIT_LOCK:
        limit = csv.field_size_limit()
        csv.field_size_limit(max(limit, sum(map(len, lines))))
        try:
            return _parse_csv(p, lines)
        finally:
            csv.field_size_limit(limit)


def _parse_csv(p: Path, lines: list[str]) -> list[tuple[int, dict]]:
    reader = csv.DictReader(lines)
    if not reader.fieldnames or not {"text", "label"} <= set(reader.fieldnames):
        raise DataError(f"CSV header must have 'text' and 'label', got {reader.fieldnames}", path=str(p), line=1)
    rows = []
    try:
        for row in reader:
            if None in row:  # more cells than header fields
                raise DataError("more cells than header fields", path=str(p), line=reader.line_num)
            rows.append((reader.line_num, row))
    except csv.Error as exc:
        # DictReader.line_num is that of the last row it returned; the line that failed is its reader's.
        raise DataError(f"malformed CSV ({exc})", path=str(p), line=reader.reader.line_num) from None
    return rows
