"""Evaluate a cascade on labeled queries: classification metrics, per-stage coverage, escalation accuracy.

`evaluate_cascade` computes all of it (an `EvaluationReport`); `save_sweeps`, `format_report` and `dump_json` write
and show it. Stages are named as the cascade names them, in its order: the fallback stage is the last that always
names a label (the MiniLM head), whose threshold decides escalation; stages before it decide before that threshold.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from ..data import Dataset
from ..errors import InvalidParameterError
from ..params import Constraint, Options, validate_params
from ..progress import progress_bar
from ..results import EMBEDDING, Decision
from ..serving.cascade import Cascade
from ..serving.llm import LookupClassifier
from ..serving.stages import FewShotLLMStage
from .misses import accuracy_by, misclassified
from .threshold import sweep as threshold_sweep

__all__ = [
    "EvaluationReport",
    "evaluate",
    "evaluate_cascade",
    "format_report",
    "save_sweeps",
    "static_sweep",
    "sweep",
    "sweep_files",
    "write_csv",
    "write_sweep",
]


def _order(cascade: Cascade) -> tuple[list[str], int]:
    """The cascade's stage names in order, and the position of its fallback stage: the last that always names a
    label, whose guess stands when a query is escalated (the MiniLM head)."""
    names = [s.name for s in cascade.stages]
    return names, max(i for i, s in enumerate(cascade.stages) if s.guesses)


def _classification(truth: Sequence[str], pred: Sequence[str], labels: list[str]) -> dict:
    p, r, f, s = precision_recall_fscore_support(truth, pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(truth, pred)),
        # over the labels in the data or predicted (sklearn's own): a label of the model's that the data lacks and
        # nothing predicts would count as an F1 of 0 in the average; the per-label table still lists it
        "macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0)),
        "per_label": {
            lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, lab in enumerate(labels)
        },
        "confusion": {"labels": labels, "matrix": confusion_matrix(truth, pred, labels=labels).tolist()},
    }


_EVALUATE_PARAMS: dict[str, list[Constraint]] = {
    "cascade": [Cascade],
    "data": [Dataset],
    "llm_mode": [Options(("off", "config", "labels", "oracle"))],
    "progress": [None, bool],
}


def evaluate(
    cascade: Cascade, data: Dataset, *, llm_mode: str = "off", progress: bool | None = None
) -> tuple[dict, list[Decision], np.ndarray]:
    """Classify each query on its own (real per-query latency); returns (metrics, decisions, stage-2 probabilities).

    `progress`: a bar while the queries are classified one by one (None: when there are 200 or more)."""
    validate_params(_EVALUATE_PARAMS, locals(), caller="evaluate")
    texts, truth = list(data.texts), list(data.labels)
    labels = sorted(set(cascade.labels) | set(truth))
    show = len(texts) >= 200 if progress is None else progress
    decisions = []
    with progress_bar(total=len(texts), desc="classifying one by one", unit="q", disable=not show) as bar:
        for t in texts:
            decisions.append(cascade.classify(t))
            bar.update(1)
    pred = [d.label for d in decisions]
    metrics: dict = {
        "n": len(texts),
        "llm_mode": llm_mode,
        "threshold": cascade.threshold,
        **_classification(truth, pred, labels),
    }
    lat = np.array([d.latency_s for d in decisions]) * 1000
    metrics["latency_ms"] = {"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95))}

    proba = cascade.head_proba(EMBEDDING, texts)  # MiniLM on every query, also those decided earlier
    stage2_all = [cascade.labels[i] for i in proba.argmax(axis=1)]
    alone = _classification(truth, stage2_all, labels)
    metrics["embedding_only"] = {"accuracy": alone["accuracy"], "macro_f1": alone["macro_f1"]}
    if cascade.static is not None:
        fast = cascade.head_proba(_static_name(cascade), texts)
        alone = _classification(truth, [cascade.labels[i] for i in fast.argmax(axis=1)], labels)
        metrics["static_only"] = {"accuracy": alone["accuracy"], "macro_f1": alone["macro_f1"]}

    names, fallback = _order(cascade)
    after = names[fallback + 1 :] or [FewShotLLMStage.name]  # stage 3 is reported, served or not
    metrics["stages"] = {}
    for stage in names[: fallback + 1] + after:
        idx = [i for i, d in enumerate(decisions) if d.stage == stage]
        metrics["stages"][stage] = {
            "coverage": len(idx) / len(texts),
            "accuracy": (sum(pred[i] == truth[i] for i in idx) / len(idx)) if idx else None,
            "n": len(idx),
        }
    s2 = {i: r.label for i, d in enumerate(decisions) if (r := d.stage_result(names[fallback])) is not None}
    reached = list(s2)
    esc = [i for i in reached if decisions[i].escalated]
    s2_wrong = [i for i in reached if s2[i] != truth[i]]
    kept = [i for i in range(len(texts)) if not decisions[i].escalated]
    metrics["escalation_rate"] = len(esc) / len(texts)
    metrics["escalation_precision"] = (sum(s2[i] != truth[i] for i in esc) / len(esc)) if esc else None
    metrics["escalation_recall"] = (sum(decisions[i].escalated for i in s2_wrong) / len(s2_wrong)) if s2_wrong else None
    metrics["residual_error"] = (sum(pred[i] != truth[i] for i in kept) / len(kept)) if kept else None
    llm_notes: dict[str, int] = {}
    for d in decisions:
        for s3 in (r for r in d.trail if r.stage in after):
            llm_notes[s3.note] = llm_notes.get(s3.note, 0) + 1
    metrics["llm_outcomes"] = llm_notes
    return metrics, decisions, proba


@dataclass(frozen=True)
class EvaluationReport:
    """What `evaluate_cascade` measured. `metrics` is what `dump_json` writes (the sweeps included, and their
    files once `save_sweeps` wrote them); `misclassified` holds one record per wrong decision."""

    metrics: dict[str, Any]
    decisions: tuple[Decision, ...]
    misclassified: tuple[dict, ...]
    sweep: tuple[dict, ...]
    static_sweep: tuple[dict, ...]
    threshold: float
    llm_mode: str


_EVALUATE_CASCADE_PARAMS: dict[str, list[Constraint]] = {
    **_EVALUATE_PARAMS,
    "answers": [None, Mapping],
    "by": [None, Options(("source",))],
}


def evaluate_cascade(
    cascade: Cascade,
    data: Dataset,
    *,
    llm_mode: str = "off",
    answers: Mapping[str, str] | None = None,
    by: str | None = None,
    progress: bool | None = None,
) -> EvaluationReport:
    """Evaluate `cascade` on `data`: metrics, per-stage coverage, escalation, and the threshold sweeps.

    `llm_mode` is stage 3: "off"; "oracle" (it answers the true label: an upper bound); "labels" (it answers from
    `answers`, text → label, e.g. recorded LLM answers); "config" (the stage 3 `cascade` has, e.g. a real endpoint).
    `by="source"` adds the accuracy per value of the data's `source` field.

    >>> report = evaluate_cascade(Cascade.load(), load_dataset("held-out.jsonl"))   # doctest: +SKIP
    >>> print(format_report(report.metrics))                                         # doctest: +SKIP
    """
    validate_params(_EVALUATE_CASCADE_PARAMS, locals(), caller="evaluate_cascade")
    if llm_mode == "labels" and answers is None:
        raise InvalidParameterError("answers", answers, "a mapping of text to label when llm_mode is 'labels'")
    if by == "source" and data.sources is None:
        raise InvalidParameterError("by", by, "None: the data has no 'source' field", caller="evaluate_cascade")
    if llm_mode == "oracle":
        answers = dict(zip(data.texts, data.labels, strict=True))
    if llm_mode in ("oracle", "labels"):
        assert answers is not None  # given, or the true labels
        served = {cascade.read(t): a for t, a in answers.items()}  # stage 3 reads a long query's window
        cascade = cascade.with_llm(LookupClassifier(served, cascade.labels, name=llm_mode))
    metrics, decisions, proba = evaluate(cascade, data, llm_mode=llm_mode, progress=progress)
    names, fallback = _order(cascade)
    if llm_mode == "config":  # what the real stage 3 answered, for the sweep
        answers = {t: d.label for t, d in zip(data.texts, decisions, strict=True) if d.stage in names[fallback + 1 :]}
    elif llm_mode == "off":
        answers = None
    rows = sweep(cascade, data, decisions, proba, answers)
    static_rows = static_sweep(cascade, data, decisions, proba)
    metrics["sweep"] = {"rows": rows}
    if static_rows:
        metrics["static_sweep"] = {"rows": static_rows}
    if by == "source":
        assert data.sources is not None  # checked above
        metrics["by_source"] = accuracy_by(data.sources, data.labels, [d.label for d in decisions])
    wrong = misclassified(data.texts, data.labels, decisions, data.sources)
    return EvaluationReport(
        metrics, tuple(decisions), tuple(wrong), tuple(rows), tuple(static_rows), cascade.threshold, llm_mode
    )


def sweep_files(prefix: str | Path) -> tuple[Path, Path, Path]:
    """The files a sweep with this prefix writes: PREFIX.csv, PREFIX.png and PREFIX-static.csv (a prefix ending
    in .csv or .png names the CSV or the plot itself)."""
    prefix = Path(prefix)
    if prefix.suffix in (".csv", ".png"):
        prefix = prefix.with_suffix("")
    csv, png, static = (prefix.with_name(prefix.name + end) for end in (".csv", ".png", "-static.csv"))
    return csv, png, static


def save_sweeps(report: EvaluationReport, prefix: str | Path) -> EvaluationReport:
    """Write the sweep (PREFIX.csv, PREFIX.png) and the static-stage sweep (PREFIX-static.csv); the report with
    their paths in its metrics."""
    title = f"threshold sweep, stage 3 = {report.llm_mode}" + (" (upper bound)" if report.llm_mode == "oracle" else "")
    csv_path, png_path = write_sweep(list(report.sweep), prefix, chosen=report.threshold, title=title)
    metrics = {**report.metrics, "sweep": {**report.metrics["sweep"], "csv": str(csv_path), "png": str(png_path)}}
    if report.static_sweep:
        static_csv = write_csv(list(report.static_sweep), sweep_files(prefix)[2])
        metrics["static_sweep"] = {**report.metrics["static_sweep"], "csv": str(static_csv)}
    return dataclasses.replace(report, metrics=metrics)


def sweep(
    cascade: Cascade,
    data: Dataset,
    decisions: Sequence[Decision],
    proba: np.ndarray,
    llm_answers: Mapping[str, str] | None,
) -> list[dict]:
    """Escalation rate vs cascade accuracy/macro-F1 over thresholds, for the given stage-3 answers (None = off)."""
    truth, texts = list(data.labels), list(data.texts)
    labels = sorted(set(cascade.labels) | set(truth))
    s2 = [cascade.labels[i] for i in proba.argmax(axis=1)]
    names, fallback = _order(cascade)
    before_minilm = np.array([d.stage in names[:fallback] for d in decisions])  # decided before the threshold
    answers = [llm_answers.get(t) if llm_answers else None for t in texts]

    def predict(kept: np.ndarray) -> list[str]:
        out = []
        for i in range(len(texts)):
            answer = answers[i]
            if before_minilm[i]:
                out.append(decisions[i].label)
            elif kept[i] or answer is None or answer not in labels:
                out.append(s2[i])
            else:
                out.append(answer)
        return out

    conf = np.where(before_minilm, np.inf, proba.max(axis=1))
    rows = threshold_sweep(conf, np.round(np.arange(0.3, 1.0001, 0.01), 2), predict=predict, truth=truth)
    return [{k: r[k] for k in ("threshold", "escalation_rate", "accuracy", "macro_f1")} for r in rows]


def static_sweep(cascade: Cascade, data: Dataset, decisions: Sequence[Decision], proba: np.ndarray) -> list[dict]:
    """Static-stage threshold vs the share it decides and the cascade's accuracy/macro-F1, stage 3 off.

    The queries the static stage passes on keep the MiniLM label. Empty when the cascade has no static stage.
    """
    if cascade.static is None:
        return []
    truth, texts = list(data.labels), list(data.texts)
    static = _static_name(cascade)
    fast = cascade.head_proba(static, texts)
    f_label = [cascade.labels[i] for i in fast.argmax(axis=1)]
    minilm = [cascade.labels[i] for i in proba.argmax(axis=1)]
    names, _ = _order(cascade)
    past_rules = np.array([d.stage in names[names.index(static) :] for d in decisions])  # reached the static stage

    def predict(takes: np.ndarray) -> list[str]:
        return [
            f_label[i] if takes[i] else minilm[i] if past_rules[i] else decisions[i].label for i in range(len(texts))
        ]

    conf = np.where(past_rules, fast.max(axis=1), -np.inf)
    rows = threshold_sweep(conf, np.round(np.arange(0.80, 1.0001, 0.01), 2), predict=predict, truth=truth)
    return [
        {
            "static_threshold": r["threshold"],
            "static_coverage": r["accepted_rate"],
            "accuracy": r["accuracy"],
            "macro_f1": r["macro_f1"],
        }
        for r in rows
    ]


def _static_name(cascade: Cascade) -> str:
    """The name of the stage whose head is the cascade's static head."""
    return next(s.name for s in cascade.stages if getattr(s, "head", None) is cascade.static)


def write_csv(rows: list[dict], path: str | Path) -> Path:
    """Rows of one shape as a CSV file."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


def write_sweep(rows: list[dict], out_prefix: str | Path, *, title: str, chosen: float) -> tuple[Path, Path]:
    """Save the sweep as CSV and as a PNG plot (escalation rate vs macro-F1)."""
    from matplotlib.figure import Figure  # no pyplot: the host program's backend stays as it is

    csv_name, png_path, _ = sweep_files(out_prefix)  # `--sweep out/sweep.csv` names the CSV itself
    csv_path = write_csv(rows, csv_name)
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot([r["escalation_rate"] * 100 for r in rows], [r["macro_f1"] for r in rows], marker=".")
    near = min(rows, key=lambda r: abs(r["threshold"] - chosen))
    ax.scatter(
        [near["escalation_rate"] * 100],
        [near["macro_f1"]],
        color="red",
        zorder=3,
        label=f"chosen threshold {chosen:.2f}",
    )
    ax.set_xlabel("escalation rate (%)")
    ax.set_ylabel("cascade macro-F1")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    return csv_path, png_path


def format_report(m: Mapping) -> str:
    """A readable plain-text table of the metrics."""

    def pct(x: float | None) -> str:
        return "   n/a" if x is None else f"{x * 100:6.2f}%"

    labels = m["confusion"]["labels"]  # one's own labels may be long: the columns widen, no label is cut
    name = max([12, *(len(x) + 2 for x in [*m["per_label"], *labels])])
    cell = max([10, *(len(x) + 1 for x in labels)])
    out = [
        f"queries: {m['n']}    llm mode: {m['llm_mode']}    threshold: {m['threshold']:.3f}",
        f"accuracy {pct(m['accuracy'])}   macro-F1 {m['macro_f1']:.4f}   "
        f"(embedding classifier alone: accuracy {pct(m['embedding_only']['accuracy'])}, "
        f"macro-F1 {m['embedding_only']['macro_f1']:.4f})",
        *(
            [
                f"static classifier alone: accuracy {pct(m['static_only']['accuracy'])}, "
                f"macro-F1 {m['static_only']['macro_f1']:.4f}"
            ]
            if "static_only" in m
            else []
        ),
        f"latency per query: p50 {m['latency_ms']['p50']:.2f} ms   p95 {m['latency_ms']['p95']:.2f} ms",
        "",
        f"{'label':<{name}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}",
    ]
    for lab, v in m["per_label"].items():
        out.append(f"{lab:<{name}}{v['precision']:>10.3f}{v['recall']:>10.3f}{v['f1']:>10.3f}{v['support']:>9}")
    out += ["", "confusion (rows: true, columns: predicted)", " " * name + "".join(f"{x:>{cell}}" for x in labels)]
    for lab, row in zip(labels, m["confusion"]["matrix"], strict=True):
        out.append(f"{lab:<{name}}" + "".join(f"{v:>{cell}}" for v in row))
    out += ["", f"{'stage':<12}{'coverage':>10}{'accuracy':>10}"]
    for stage, v in m["stages"].items():
        out.append(f"{stage:<12}{pct(v['coverage']):>10}{pct(v['accuracy']):>10}")
    out += [
        "",
        f"escalation rate {pct(m['escalation_rate'])}   precision {pct(m['escalation_precision'])}   "
        f"recall {pct(m['escalation_recall'])}   residual error {pct(m['residual_error'])}",
    ]
    if m.get("llm_mode") == "oracle":
        out.append("NOTE: --llm oracle answers escalated queries with the true label: an upper bound, not a result.")
    return "\n".join(out)


def dump_json(metrics: Mapping, path: str | Path) -> None:
    """Write metrics as JSON."""
    Path(path).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
