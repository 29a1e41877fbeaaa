"""The `taskrouter` command line. Errors become one-line messages here, at the edge, and nowhere else.

Exit status: 0 done; 1 our error (bad input, a file that cannot be read or written: one line, `error: ...`);
2 a usage error from click (an unknown option, a value of the wrong type). Each command checks its options
against a table of constraints (`classifier.params`) before any work.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from classifier.errors import ConfigError, TaskRouterError
from classifier.params import SEED, SHARE, Constraint, Interval, validate_params

if TYPE_CHECKING:
    from datetime import datetime

    from classifier.data import Dataset
    from classifier.training.source_folds import FoldScore

DEBUG_VARIABLE = "TASKROUTER_DEBUG"
"""Set (to anything), an unexpected error's message and traceback are shown as Python shows them."""

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Route LLM requests to the right model pool.",
)


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"taskrouter {version('taskrouter')}")
        except PackageNotFoundError:
            typer.echo("taskrouter (not installed: run from a source tree)")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_version, help="Print the version and exit.")
    ] = False,
) -> None:
    """Route LLM requests to the right model pool."""


class EncoderChoice(StrEnum):
    auto = "auto"
    base = "base"
    tuned = "tuned"


class Objective(StrEnum):
    softmax = "softmax"
    contrastive = "contrastive"


class LLMMode(StrEnum):
    off = "off"
    config = "config"
    labels = "labels"
    oracle = "oracle"


class By(StrEnum):
    source = "source"


class SelectBy(StrEnum):
    balanced_accuracy = "balanced-accuracy"
    macro_f1 = "macro-f1"


ONE_FLOAT = "<float>"
"""The metavar of an option given once per value (typer's own reads `<list[float]>`, as if it took a list)."""

_TRAIN_OPTIONS: dict[str, list[Constraint]] = {
    "max_escalation": [SHARE],
    "max_error": [SHARE],
    "precision_floor": [SHARE],
    "static_max_error": [SHARE],
    "scope_max_fallback": [Interval(Real, 0, 1, closed="neither")],
    "static_max_error_out_of_source": [SHARE],
    "seed": [SEED],
    "c": [Interval(Real, 0, None, closed="neither")],
    "static_c": [Interval(Real, 0, None, closed="neither")],
    "select_c": [list],
    "lexical_weight": [Interval(Real, 0, None, closed="left")],
    "select_lexical_weight": [list],
}


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(help="Labeled queries (.jsonl or .csv with text,label).")],
    out: Annotated[Path, typer.Option(help="Model directory to write.")] = Path("taskrouter-model"),
    rules: Annotated[Path | None, typer.Option(help="Keyword rule file (YAML); default: the shipped rules.")] = None,
    max_escalation: Annotated[float | None, typer.Option(help="Threshold target: max share escalated.")] = None,
    max_error: Annotated[float | None, typer.Option(help="Threshold target: max error on accepted queries.")] = None,
    precision_floor: Annotated[
        float, typer.Option(help="Rules below this training precision are switched off.")
    ] = 0.98,
    static: Annotated[bool, typer.Option(help="Also train the fast static-embedding stage.")] = True,
    static_features: Annotated[
        bool | None, typer.Option(help="The MiniLM head reads the static vectors too (needs --static; default: on).")
    ] = None,
    static_max_error: Annotated[
        float, typer.Option(help="Static stage target: max held-out error on what it accepts.")
    ] = 0.01,
    encoder: Annotated[
        EncoderChoice,
        typer.Option(
            help="The shipped encoder the heads read: 'tuned' (tuned on the shipped training data's labels), "
            "'base' (MiniLM as it came), or 'auto': tuned when the data's labels are the ones it was tuned on."
        ),
    ] = EncoderChoice.auto,
    cv_vectors: Annotated[
        Path | None,
        typer.Option(
            help="Cross-fitted vectors of the rows the tuned encoder was tuned on (tune-encoder writes "
            "them): thresholds are then picked as for new traffic."
        ),
    ] = None,
    calibration_data: Annotated[
        Path | None,
        typer.Option(
            help="Labeled rows from other sources, never trained on: the static threshold must hold "
            "--static-max-error-out-of-source on them, and the escalation budget is read on them."
        ),
    ] = None,
    static_max_error_out_of_source: Annotated[
        float, typer.Option(help="Static stage target on --calibration-data: max error on what it accepts.")
    ] = 0.02,
    scope_max_fallback: Annotated[
        float,
        typer.Option(
            help="Scope target: max share of held-out in-scope rows below the scope threshold (sent to the "
            "config's fallback_label)."
        ),
    ] = 0.02,
    c: Annotated[
        float | None,
        typer.Option(
            "--c",
            help="The heads' inverse regularisation strength (scikit-learn's C; default 4); --select-c chooses it.",
        ),
    ] = None,
    static_c: Annotated[
        float | None,
        typer.Option(
            "--static-c",
            help="The static head's C alone (default: the heads' --c, or the C --select-c chooses); a smaller C "
            "makes it answer fewer queries at the same error.",
        ),
    ] = None,
    select_c: Annotated[
        list[float] | None,
        typer.Option(
            metavar=ONE_FLOAT,
            help="Train once per value of C (repeat the option) and keep the one with the best mean --select-by "
            "score on the out-of-source folds of --calibration-data (each fold holds every label from two sources).",
        ),
    ] = None,
    lexical_weight: Annotated[
        float | None,
        typer.Option(
            help="How much the heads weigh the character n-grams against the embeddings (default 1; 0: embeddings "
            "only); --select-lexical-weight chooses it."
        ),
    ] = None,
    select_lexical_weight: Annotated[
        list[float] | None,
        typer.Option(
            metavar=ONE_FLOAT,
            help="Candidate n-gram weights (repeat the option), chosen like --select-c (with it: every pair).",
        ),
    ] = None,
    select_by: Annotated[
        SelectBy | None,
        typer.Option(
            help="What --select-c and --select-lexical-weight rank by, the folds' mean of: balanced accuracy (the "
            "default: the mean of the labels' recalls; the traffic's own mix is set by the config's priors) or "
            "macro-F1 (which a lean toward the folds' largest label raises)."
        ),
    ] = None,
    seed: int = 0,
) -> None:
    """Train the cascade (rules, static and MiniLM classifiers, thresholds) and save it."""
    _check_options(
        ctx,
        _TRAIN_OPTIONS,
        locals(),
        exclusive=[("max_escalation", "max_error"), ("c", "select_c"), ("lexical_weight", "select_lexical_weight")],
    )
    if (select_c or select_lexical_weight) and calibration_data is None:
        _fail("--select-c and --select-lexical-weight need --calibration-data: the choice is made on its "
              "out-of-source folds")  # fmt: skip
    if select_by is not None and not (select_c or select_lexical_weight):
        _fail("--select-by ranks the candidates of --select-c or --select-lexical-weight: give one of them")
    if select_c and not all(0 < c < float("inf") for c in select_c):
        _fail(f"--select-c: every C must be finite and > 0, got {select_c}")
    if static_features and not static:
        _fail("--static-features needs the static stage: drop --no-static, or pass --no-static-features")
    if static_c is not None and not static:
        _fail("--static-c needs the static stage: drop --no-static")
    if select_lexical_weight and not all(0 <= w < float("inf") for w in select_lexical_weight):
        _fail(f"--select-lexical-weight: every weight must be finite and >= 0, got {select_lexical_weight}")
    _require("train", "sklearn", "scipy", "matplotlib", extra="train")
    from classifier.data import load_dataset
    from classifier.model_files import check_model_out
    from classifier.training.train import select_by_folds, train_cascade
    from classifier.training.tune import CrossFit

    check_model_out(out)  # before training: a folder a save would empty is refused now, not after the work
    dataset = load_dataset(data)
    chosen, why = _encoder_for(encoder, dataset.labels)
    calibration = load_dataset(calibration_data, allowed_labels=dataset.labels) if calibration_data else None
    if calibration is not None:
        _check_calibration(calibration, dataset, calibration_data)
    options: dict[str, Any] = dict(
        out=out,
        rules_path=rules,
        precision_floor=precision_floor,
        max_escalation=max_escalation,
        max_error=max_error,
        static=static,
        static_features=static if static_features is None else static_features,
        static_max_error=static_max_error,
        random_state=seed,
        encoder=chosen,
        cv_vectors=CrossFit.load(cv_vectors) if cv_vectors is not None else None,
        scope_max_fallback=scope_max_fallback,
        static_max_error_out_of_source=static_max_error_out_of_source,
        **({"C": c} if c is not None else {}),
        **({"static_C": static_c} if static_c is not None else {}),
        **({"lexical_weight": lexical_weight} if lexical_weight is not None else {}),
    )
    selection: list[dict] = []
    rank_by = select_by or SelectBy.balanced_accuracy
    if (select_c or select_lexical_weight) and calibration is not None:
        cs: list[float | None] = list(select_c) if select_c else [None]
        weights: list[float | None] = list(select_lexical_weight) if select_lexical_weight else [None]
        candidates = [
            {**({"C": cc} if cc is not None else {}), **({"lexical_weight": w} if w is not None else {})}
            for cc in cs
            for w in weights
        ]
        _, report, selection = select_by_folds(
            dataset, calibration=calibration, candidates=candidates, score=rank_by.value.replace("-", "_"), **options
        )
    else:
        _, report = train_cascade(dataset, calibration=calibration, **options)
    typer.echo(f"trained on {report.n} queries {report.label_counts} with the {chosen} encoder ({why})")
    typer.echo(f"cross-validated stage 2: accuracy {report.cv_accuracy:.4f}, macro-F1 {report.cv_macro_f1:.4f}")
    if report.static_threshold is not None:
        typer.echo(
            f"static stage threshold {report.static_threshold:.4f}: accepts {report.static_coverage:.1%} of "
            f"held-out stage-2 queries (max error {static_max_error})"
        )
    typer.echo(f"escalation threshold {report.threshold:.4f} (target {report.target})")
    curve = report.learning_curve or {}
    typer.echo(
        "learning curve (cross-validated macro-F1): "
        + ", ".join(f"{float(share):.0%} of the rows {f1:.3f}" for share, f1 in curve.items())
    )
    if report.scope is not None:
        typer.echo(
            f"scope threshold {report.scope.threshold:.4f} (mean similarity to the {report.scope.k} nearest "
            f"examples; {report.scope.target:.0%} of held-out rows fall below it): set "
            "taskrouter.classifier.fallback_label to send queries below it there"
        )
    if selection:
        chosen = " and ".join(name for name, given in (("C", select_c), ("the n-gram weight", select_lexical_weight))
                              if given)  # fmt: skip
        typer.echo(f"{chosen} chosen on the out-of-source folds by mean {rank_by.value} (stage 3 off):")
        lines = [
            (
                " ".join(f"{'C' if k == 'C' else 'lexical_weight'}={v:<6g}" for k, v in row["params"].items()),
                *(_fold_scores(row, name) for name in ("balanced_accuracy", "macro_f1")),
                "  <- kept" if row["chosen"] else _against_kept(row["against_kept"]),
            )
            for row in selection
        ]
        widths = [max(16, *(len(line[0]) for line in lines))]
        widths += [max(len(head), *(len(line[i]) for line in lines)) for i, head in ((1, "balanced accuracy"),
                                                                                     (2, "macro-F1"))]  # fmt: skip
        typer.echo(f"  {'':<{widths[0]}} {'balanced accuracy':<{widths[1]}} {'macro-F1':<{widths[2]}}  "
                   "rows right by the kept one only vs by this one only, McNemar p")  # fmt: skip
        for params, balanced, macro, mark in lines:
            typer.echo(f"  {params:<{widths[0]}} {balanced:<{widths[1]}} {macro:<{widths[2]}}{mark}")
    if report.folds:
        read = "each scored with thresholds read on the other folds' rows" if len(report.folds) > 1 else (
            "one fold only: scored with the thresholds read on its own rows"
        )  # fmt: skip
        typer.echo(
            f"out-of-source folds of {calibration_data} (stage 3 off; oracle: macro-F1 with the escalated rows "
            f"right; never trained on; {read}):"
        )
        header = f"{'fold':<5} {'rows':>6} {'macro-F1':>8} {'escalated':>9} {'oracle':>7} {'static':>7}  sources"
        typer.echo(f"  {header}")
        for f in report.folds:
            static_share = "-" if f.static_coverage is None else f"{f.static_coverage:.1%}"
            typer.echo(
                f"  {f.fold:<5} {f.n:>6} {f.macro_f1:>8.4f} {f.escalated:>9.1%} {f.oracle_macro_f1:>7.4f} "
                f"{static_share:>7}  " + ", ".join(f.sources)
            )
        typer.echo(
            f"  mean macro-F1 {report.folds_macro_f1:.4f}, mean balanced accuracy {report.folds_balanced_accuracy:.4f}"
        )
        typer.echo("  accuracy by source: " + ", ".join(_by_source(report.folds)))
    elif calibration is not None:
        typer.echo("no out-of-source folds: the calibration rows' sources do not give every label twice per fold")
    for label, more in report.few_rows.items():  # said once, here: training's own log line is left out (_log_filter)
        typer.echo(
            f"warning: label {label!r} has {report.label_counts[label]} rows; add at least {more} more", err=True
        )
    off = report.disabled_rules
    foreign = [r for r in off if r["label"] not in report.label_counts]
    typer.echo(f"keyword rules: {len(report.rules) - len(off)} on, {len(off)} switched off")
    if foreign:
        labels = sorted({r["label"] for r in foreign})
        typer.echo(f"  {len(foreign)} off because their labels are not in the data: {', '.join(labels)}")
    from classifier.serving.keywords import MIN_RULE_HITS, load_rules

    in_file = {r.name: r.enabled for r in load_rules(rules)}  # as the rules file has them, before measuring
    for r in off:
        if r in foreign:
            continue
        prec = "n/a" if r["precision"] is None else f"{r['precision']:.3f}"
        if not in_file.get(r["name"], True):
            why = "off in the rules file"
        elif r["hits"] < MIN_RULE_HITS:
            why = f"fewer than {MIN_RULE_HITS} hits"
        elif r["precision"] is not None and r["precision"] < precision_floor:
            why = f"precision below {precision_floor}"
        else:
            why = "switched off"
        typer.echo(f"  off: {r['name']:<32} label={r['label']:<9} hits={r['hits']:<4} precision={prec}  ({why})")
    typer.echo(f"saved to {out}")


def _fold_scores(row: Mapping[str, Any], score: str) -> str:
    """A selection row's mean `score` over the folds, then each fold's: `0.9212 (A 0.9418, B 0.9006)`."""
    return f"{row['folds_' + score]:.4f} (" + ", ".join(f"{f} {v:.4f}" for f, v in row[score].items()) + ")"


def _against_kept(against: Mapping[str, Any]) -> str:
    """`  12 vs 7, p 0.36`: rows the kept candidate alone got right, rows this one alone did, McNemar's exact p."""
    return f"  {against['kept_only']} vs {against['this_only']}, p {against['mcnemar_p']:.2g}"


def _by_source(folds: Sequence[FoldScore]) -> list[str]:
    """`source 0.953` for each source of each fold, in fold order."""
    return [f"{source} {acc:.3f}" for f in folds for source, acc in f.accuracy_by_source.items()]


def _check_calibration(calibration: Dataset, dataset: Dataset, path: Path | None) -> None:
    """Name calibration rows that are in the training data too (they are read as calibration all the same)."""
    trained = {t.strip().lower() for t in dataset.texts}
    shared = [i for i, t in enumerate(calibration.texts) if t.strip().lower() in trained]
    if shared:
        typer.echo(
            f"warning: {len(shared)} rows of {path} are in the training data too (the first: row {shared[0] + 1}); "
            "thresholds read on them look better than new traffic",
            err=True,
        )


def _encoder_for(choice: EncoderChoice, labels: Sequence[str]) -> tuple[str, str]:
    """The encoder to train with, and why. `auto`: the tuned encoder for the labels it was tuned on; the base one
    for anyone else's labels, which the tuned encoder serves worse (benchmarks/encoder_forgetting.py)."""
    from classifier.serving.assets import tuned_labels

    if choice is not EncoderChoice.auto:
        return choice.value, "--encoder " + choice.value
    tuned = tuned_labels()
    if tuned is not None and tuned == sorted(set(labels)):
        return "tuned", "--encoder auto: these are the labels it was tuned on"
    why = "no tuned encoder is installed" if tuned is None else f"the tuned one was tuned on other labels: {tuned}"
    return "base", f"--encoder auto: {why}"


@app.command("tune-encoder")
def tune_encoder(
    data: Annotated[Path, typer.Option(help="Labeled queries (.jsonl or .csv with text,label) to tune on.")],
    out: Annotated[Path, typer.Option(help="Directory for the tuned model (transformers format).")] = Path(
        "taskrouter-encoder"
    ),
    objective: Annotated[Objective, typer.Option(help="softmax (linear head) or contrastive (SetFit-like).")] = (
        Objective.softmax
    ),
    epochs: Annotated[
        int,
        typer.Option(help="Passes over the data (each about 40 s per 1,000 rows on 2 cores; --cross-fit doubles it)."),
    ] = 2,
    device: Annotated[str, typer.Option(help="cpu, or cuda where a GPU is present.")] = "cpu",
    install: Annotated[
        bool, typer.Option(help="Export it to the package's serving files (ONNX graph, static table) as 'tuned'.")
    ] = True,
    cross_fit: Annotated[
        bool,
        typer.Option(
            help="Also tune two encoders on halves of the rows and keep each half's vectors from the other "
            "(OUT/crossfit.npz, for train --cv-vectors; made for the installed graph, so not with --no-install); "
            "doubles the time."
        ),
    ] = True,
    seed: int = 0,
) -> None:
    """Fine-tune MiniLM on labeled queries, then install it as the shipped 'tuned' encoder (train --encoder tuned)."""
    _require("tune-encoder", "torch", "transformers", "model2vec", "onnx", extra="train")
    from classifier.data import load_dataset
    from classifier.training.tune import TuneRecipe
    from classifier.training.tune import tune_encoder as tune

    recipe = TuneRecipe(objective=objective.value, epochs=epochs, seed=seed).check()
    _check_tune_out(out)
    dataset = load_dataset(data)
    tune(dataset.texts, dataset.labels, out, recipe, device=device)
    typer.echo(f"tuned encoder saved to {out}")
    if install:
        from classifier.building import make_assets

        record = make_assets.build(encoder="tuned", source=out)
        for name in (make_assets.ENCODERS["tuned"].onnx_file, make_assets.ENCODERS["tuned"].static_file):
            typer.echo(f"installed {name} (sha256 {record['files'][name]['sha256'][:12]})")
        typer.echo("models trained now with --encoder tuned read it; models trained on an earlier one are refused")
        if cross_fit:
            from classifier.training.tune import cross_fit as make_cross_fit

            sha = record["files"][make_assets.ENCODERS["tuned"].onnx_file]["sha256"]
            path = make_cross_fit(dataset.texts, dataset.labels, recipe, encoder_sha256=sha, device=device).save(
                out / "crossfit.npz"
            )
            typer.echo(f"cross-fitted vectors: {path} (taskrouter train --encoder tuned --cv-vectors {path})")
    elif cross_fit:  # the vectors are made for an installed graph (its sha256 is in them)
        typer.echo("no cross-fitted vectors: they are made for the installed graph (run without --no-install)")


def _check_tune_out(out: Path) -> None:
    """Before tuning: `out` is new, empty, or an earlier tuned encoder (tuning writes its files into it)."""
    from classifier.training.tune import RECORD

    if out.exists() and not out.is_dir():
        _fail(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / RECORD).is_file():
        _fail(
            f"--out {out}: holds files and is no tuned encoder (no {RECORD}, which a tune writes last: an "
            "interrupted one leaves a folder without it); delete it, or choose a new or empty folder"
        )


_PRIORS_OPTIONS: dict[str, list[Constraint]] = {
    "pseudo_count": [Interval(Real, 0, None, closed="left")],
    "max_ratio": [Interval(Real, 1, None, closed="left")],
}


@app.command()
def priors(
    ctx: typer.Context,
    data: Annotated[
        Path | None, typer.Option(help="Recent queries, unlabeled: .jsonl with a 'text' field, or .txt one per line.")
    ] = None,
    from_telemetry: Annotated[
        str | None, typer.Option(help="A telemetry database URL whose events kept their text (store_text: true).")
    ] = None,
    model: Annotated[Path | None, typer.Option(help="Model directory; default: the shipped model.")] = None,
    pseudo_count: Annotated[
        float, typer.Option(help="The training mix counts as this many queries (larger: moves slower).")
    ] = 500.0,
    max_ratio: Annotated[float, typer.Option(help="Each share stays within this factor of the training one.")] = 3.0,
    since: Annotated[
        str | None,
        typer.Option(
            help="With --from-telemetry: only events from this date (YYYY-MM-DD) or ISO time on; UTC unless it has "
            "an offset."
        ),
    ] = None,
) -> None:
    """Estimate the traffic's label mix from unlabeled queries (EM, bounded) for `classifier: {priors: ...}`."""
    _check_options(ctx, _PRIORS_OPTIONS, locals())
    if since is not None and from_telemetry is None:
        raise TaskRouterError("--since reads the telemetry's times: give it with --from-telemetry URL")
    start = _since(since)
    import numpy as np

    from classifier.results import EMBEDDING
    from classifier.serving.cascade import Cascade
    from classifier.serving.priors import bounded, estimate_priors

    if (data is None) == (from_telemetry is None):
        raise TaskRouterError("give one of --data FILE and --from-telemetry URL")
    texts = _texts_from_file(data) if data is not None else _texts_from_telemetry(str(from_telemetry), start)
    cascade = Cascade.load(model)  # as trained: EM reads the head's probabilities under the training mix
    labels = cascade.labels
    train = np.array([cascade.training_priors[label] for label in labels])
    estimate = estimate_priors(cascade.head_proba(EMBEDDING, texts), train)  # each query's window, as served
    held = bounded(estimate, train, n=len(texts), pseudo_count=pseudo_count, max_ratio=max_ratio)
    window = f" since {start.isoformat()}" if start else ""
    typer.echo(f"{len(texts)} queries{window}; label mix (training -> estimated -> bounded):")
    for i, label in enumerate(labels):
        typer.echo(f"  {label:<12} {train[i]:.3f} -> {estimate[i]:.3f} -> {held[i]:.3f}")
    shares = ", ".join(f"{label}: {held[i]:.3f}" for i, label in enumerate(labels))
    typer.echo(f"for the routing config:\n  classifier:\n    priors: {{{shares}}}")


def _texts_from_file(path: Path) -> list[str]:
    from classifier.data import check_query, read_jsonl

    if not path.is_file():
        raise TaskRouterError(f"{path}: file not found")
    if path.suffix.lower() == ".jsonl":
        rows = [(line, row.get("text")) for line, row in read_jsonl(path)]
    elif path.suffix.lower() == ".txt":
        lines = _decode(path.read_bytes(), str(path)).splitlines()
        rows = [(i, t) for i, t in enumerate(lines, start=1) if t.strip()]
    else:
        raise TaskRouterError(f"{path}: use .jsonl (a 'text' field per line) or .txt (a query per line)")
    texts = [check_query(t, field=f"{path}:{line}: text") for line, t in rows]
    if not texts:
        raise TaskRouterError(f"{path}: no queries")
    return texts


def _telemetry_events(url: str, option: str, since: datetime | None = None) -> list[dict[str, Any]]:
    """The events of the telemetry database at `url`; its errors name `option`, where the URL came from (`--db`,
    `--from-telemetry`, or `taskrouter.telemetry.url (in FILE)`)."""
    from routing.telemetry import TelemetryStore

    try:
        return TelemetryStore(url, create=False).events(since=since)
    except ConfigError as exc:  # the store names the database "db", or the field a router reads it from
        if exc.path not in ("db", "taskrouter.telemetry.url"):
            raise
        raise ConfigError(str(exc).removeprefix(f"{exc.path}: "), path=option) from None


def _texts_from_telemetry(url: str, since: datetime | None = None) -> list[str]:
    events = _telemetry_events(url, "--from-telemetry", since=since)
    if not events and since is not None:
        raise TaskRouterError(f"--since: no telemetry events from {since.isoformat()} on")
    texts = [e["query_text"] for e in events if e.get("query_text")]
    if not texts:
        since_then = "" if since is None else f" from {since.isoformat()} on"
        raise TaskRouterError(
            f"the telemetry events{since_then} hold no query text: set `telemetry: {{store_text: true}}` to "
            "estimate from them"
        )
    return texts


_EVALUATE_OPTIONS: dict[str, list[Constraint]] = {
    "threshold": [SHARE],
    "static_threshold": [SHARE],
}


@app.command()
def evaluate(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(help="Labeled queries to evaluate on.")],
    model: Annotated[Path | None, typer.Option(help="Model directory; default: the shipped model.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics as JSON here.")] = None,
    llm: Annotated[
        LLMMode,
        typer.Option(
            help="Stage 3: off, config (real endpoint), labels (recorded "
            "answers, see --answers), oracle (true label: upper bound)."
        ),
    ] = LLMMode.off,
    answers: Annotated[
        Path | None, typer.Option(help="JSONL of recorded answers {text, label} for --llm labels.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Routing config for --llm config.")] = None,
    sweep_out: Annotated[
        Path | None,
        typer.Option("--sweep", help="Prefix for the threshold sweep (.csv and .png); default: next to --json."),
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option(help="Write the sweep (sweep.csv, sweep.png, sweep-static.csv) into this folder.")
    ] = None,
    threshold: Annotated[float | None, typer.Option(help="Override the model's threshold.")] = None,
    static: Annotated[
        bool, typer.Option(help="Use the model's static stage (--no-static: MiniLM reads every query past the rules).")
    ] = True,
    static_threshold: Annotated[float | None, typer.Option(help="Override the static stage's threshold.")] = None,
    errors: Annotated[
        Path | None,
        typer.Option(
            help="Write every misclassified query here (JSONL: text, gold, predicted, stage, confidence, escalated)."
        ),
    ] = None,
    by: Annotated[By | None, typer.Option(help="'source': accuracy per value of the data's source field.")] = None,
) -> None:
    """Evaluate the cascade: metrics, stage coverage, escalation accuracy, threshold sweep."""
    _check_options(ctx, _EVALUATE_OPTIONS, locals())
    _require("evaluate", "sklearn", "matplotlib", extra="train")
    from classifier.data import load_dataset
    from classifier.serving.cascade import Cascade
    from classifier.training.evaluate import dump_json, evaluate_cascade, format_report, save_sweeps
    from classifier.training.misses import write_jsonl

    if llm is LLMMode.labels and answers is None:
        raise TaskRouterError("--llm labels needs --answers FILE")
    from routing.config import CONFIG_ENV

    if llm is LLMMode.config and config is None and not os.environ.get(CONFIG_ENV):
        raise TaskRouterError(f"--llm config needs --config FILE (or {CONFIG_ENV} naming one)")
    for option, value, mode in (("--answers", answers, LLMMode.labels), ("--config", config, LLMMode.config)):
        if value is not None and llm is not mode:
            _fail(f"{option} is read only with --llm {mode.value}")
    if static_threshold is not None and not static:
        _fail("--static-threshold needs the static stage: drop --no-static")
    if sweep_out is not None and out_dir is not None:
        _fail("--sweep and --out-dir both name where the sweep goes: pass one")
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        _fail(f"--out-dir {out_dir}: exists and is not a folder")
    # The sweep goes where the user said (--sweep, --out-dir, next to --json), never into the current folder.
    prefix = (
        sweep_out
        or (out_dir / "sweep" if out_dir else None)
        or (json_out.with_name(json_out.stem + "-sweep") if json_out else None)
    )
    _check_outputs({"--json": json_out, "--errors": errors}, prefix, [data, answers, config, model])
    dataset = load_dataset(data, unique=False)
    cascade = Cascade.load(model, threshold=threshold, static=static, static_threshold=static_threshold)
    _check_eval_labels(dataset.labels, cascade.labels, data)
    if by is By.source and dataset.sources is None:
        raise TaskRouterError(f"--by source: {data} has no 'source' field")
    recorded = None
    with contextlib.ExitStack() as opened:
        if llm is LLMMode.labels:
            assert answers is not None  # checked above
            given = load_dataset(answers, unique=False)
            recorded = dict(zip(given.texts, given.labels, strict=True))
        elif llm is LLMMode.config:
            from routing.config import ClassifierSettings, load_config
            from routing.router import TaskRouter

            routing = load_config(config)  # its stage-3 pool only: the cascade is the one given here, as given
            routing = routing.model_copy(
                update={"taskrouter": routing.taskrouter.model_copy(update={"classifier": ClassifierSettings()})}
            )
            router = opened.enter_context(TaskRouter(routing, cascade=cascade))  # closed after the run
            cascade = cascade.with_llm(router.llm_stage(cascade.labels))
        report = evaluate_cascade(
            cascade, dataset, llm_mode=llm.value, answers=recorded, by=None if by is None else by.value
        )
    if prefix is not None:
        report = save_sweeps(report, prefix)
    metrics = report.metrics
    typer.echo(format_report(metrics))
    for source, row in (metrics.get("by_source") or {}).items():
        typer.echo(f"  source {source or '(none)':<28} n={row['n']:<5} accuracy {row['accuracy']:.3f}")
    if errors is not None:
        typer.echo(f"misclassified: {len(report.misclassified)} -> {write_jsonl(report.misclassified, errors)}")
    if prefix is None:
        typer.echo("\nsweep not written: pass --json FILE or --out-dir DIR to keep it (.csv and .png)")
    else:
        typer.echo(
            f"\nsweep: {metrics['sweep']['csv']}, {metrics['sweep']['png']}"
            + (f"\nstatic-stage sweep: {metrics['static_sweep']['csv']}" if report.static_sweep else "")
        )
    if json_out:
        dump_json(metrics, json_out)
        typer.echo(f"metrics: {json_out}")


def _check_outputs(outputs: Mapping[str, Path | None], sweep: Path | None, inputs: Sequence[Path | None]) -> None:
    """Before any work: each output file (option: path) is no folder and its folder exists; no file written (the
    sweep's three from its prefix too) is one of the command's inputs or another output."""
    from classifier.training.evaluate import sweep_files

    written: dict[Path, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        if path.is_dir():
            _fail(f"{option} {path}: is a folder; name a file")
        if not path.parent.is_dir():
            _fail(f"{option} {path}: {path.parent} is not a folder")
        written.setdefault(path.resolve(), f"{option} {path}")
    for path in sweep_files(sweep) if sweep is not None else ():
        if path.is_dir():
            _fail(f"the sweep's {path}: is a folder")
        written.setdefault(path.resolve(), f"the sweep's {path}")
    if len(written) < sum(p is not None for p in outputs.values()) + (3 if sweep is not None else 0):
        _fail("two outputs name the same file: " + ", ".join(sorted(written.values())))
    read = {p.resolve() for p in inputs if p is not None}
    for path, what in written.items():
        if path in read:
            _fail(f"{what}: is an input of this command; writing it would replace it")


def _check_eval_labels(truth: Sequence[str], model_labels: Sequence[str], data: Path) -> None:
    """Refuse data none of whose labels the model has; warn about the labels it lacks."""
    from classifier.errors import LabelError

    missing = sorted(set(truth) - set(model_labels))
    if missing and len(missing) == len(set(truth)):
        raise LabelError(f"{data}: none of its labels {missing} is a label of the model {sorted(model_labels)}")
    if missing:
        share = sum(y in missing for y in truth) / len(truth)
        typer.echo(
            f"warning: {share:.1%} of {data} has labels the model lacks ({missing}); those count as errors", err=True
        )


@app.command()
def compare(
    old: Annotated[Path, typer.Argument(help="The model directory before the retrain.", show_default=False)],
    new: Annotated[Path, typer.Argument(help="The model directory after it.", show_default=False)],
    data: Annotated[Path, typer.Option(help="Labeled queries to compare them on.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the comparison as JSON here.")] = None,
) -> None:
    """Show what a retrain changed on labeled queries: metrics old vs new, and the queries it fixed and broke
    (the first ten of each here, all of them in --json), with McNemar's exact p for fixed against broken."""
    _require("compare", "sklearn", extra="train")
    from classifier.data import load_dataset
    from classifier.serving.cascade import Cascade
    from classifier.training.evaluate import dump_json
    from classifier.training.evaluate import evaluate as run_eval

    _check_outputs({"--json": json_out}, None, [data, old, new])
    dataset = load_dataset(data, unique=False)
    cascades = {"old": Cascade.load(old), "new": Cascade.load(new)}  # both before either is evaluated
    for cascade in cascades.values():
        _check_eval_labels(dataset.labels, cascade.labels, data)
    runs = {name: run_eval(cascade, dataset) for name, cascade in cascades.items()}
    truth = dataset.labels
    old_pred = [d.label for d in runs["old"][1]]
    new_pred = [d.label for d in runs["new"][1]]
    changed = [
        {"text": t, "label": y, "old": o, "new": n, "change": "fixed" if n == y else "broken" if o == y else "wrong"}
        for t, y, o, n in zip(dataset.texts, truth, old_pred, new_pred, strict=True)
        if o != n
    ]
    fixed = sum(c["change"] == "fixed" for c in changed)
    broken = sum(c["change"] == "broken" for c in changed)
    from classifier.training.source_folds import mcnemar_p

    p_value = mcnemar_p(fixed, broken)
    m_old, m_new = runs["old"][0], runs["new"][0]
    typer.echo(f"{'':<22}{'old':>10}{'new':>10}{'change':>10}")
    for key in ("accuracy", "macro_f1", "escalation_rate"):
        typer.echo(f"{key:<22}{m_old[key]:>10.4f}{m_new[key]:>10.4f}{m_new[key] - m_old[key]:>+10.4f}")
    for label, v in m_new["per_label"].items():
        before = m_old["per_label"].get(label, {}).get("f1", 0.0)
        typer.echo(f"{'f1 ' + label:<22}{before:>10.4f}{v['f1']:>10.4f}{v['f1'] - before:>+10.4f}")
    typer.echo(
        f"\n{len(changed)} predictions changed: {fixed} fixed, {broken} broken, {len(changed) - fixed - broken} "
        f"wrong both times; fixed against broken: McNemar exact p = {p_value:.3g} "
        f"({'more than' if p_value < 0.05 else 'within'} what chance gives, at the 0.05 level)"
    )
    for kind in ("fixed", "broken"):
        rows = [c for c in changed if c["change"] == kind]
        for c in rows[:10]:
            text = " ".join(c["text"].split())
            typer.echo(
                f"  {kind:<7}{c['label']:>10}: {c['old']} -> {c['new']}  {text[:70]}{'…' if len(text) > 70 else ''}"
            )
        if len(rows) > 10:
            typer.echo(f"  ... and {len(rows) - 10} more {kind}" + (" (all in --json)" if json_out else ""))
    if json_out:
        dump_json(
            {
                "old": {k: m_old[k] for k in ("accuracy", "macro_f1", "escalation_rate", "per_label")},
                "new": {k: m_new[k] for k in ("accuracy", "macro_f1", "escalation_rate", "per_label")},
                "fixed": fixed,
                "broken": broken,
                "mcnemar_p": p_value,
                "changed": changed,
            },
            json_out,
        )


@app.command()
def report(
    out: Annotated[Path, typer.Option(help="HTML file to write.")] = Path("report.html"),
    db: Annotated[str | None, typer.Option(help="Telemetry database URL; default: the config's.")] = None,
    config: Annotated[Path | None, typer.Option(help="Routing config (pool prices for the baseline).")] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only events from this date (YYYY-MM-DD) or ISO time on; UTC unless it has an offset."),
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the numbers as JSON.")] = None,
    baseline_pool: Annotated[str, typer.Option(help="Pool of the send-everything-there baseline.")] = "capable",
) -> None:
    """Write the monitoring report (self-contained HTML, optional JSON) from telemetry events."""
    _require("report", "matplotlib", extra="report")
    _check_outputs({"--out": out, "--json": json_out}, None, [config])
    from classifier.atomic import replaced
    from routing.config import resolve_secrets
    from routing.report import compute_metrics, load_report_config, readings, render_html

    cfg = load_report_config(config) if config is not None else None  # prices and the URL: no provider secrets
    url = db or (resolve_secrets(cfg.taskrouter.telemetry.url, "taskrouter.telemetry.url") if cfg else None)
    if not url:
        raise TaskRouterError("no telemetry database: pass --db URL or a --config with taskrouter.telemetry.url")
    start = _since(since)
    events = _telemetry_events(url, "--db" if db else f"taskrouter.telemetry.url (in {config})", since=start)
    metrics = compute_metrics(events, config=cfg, baseline_pool=baseline_pool)
    # Both hold stored query texts (the escalated sample): private to their owner (0600), as `review export` writes.
    with replaced(out) as f:
        f.write(render_html(metrics))
    typer.echo(f"{metrics['requests']} requests -> {out}")
    for text in readings(metrics).values():
        typer.echo(f"- {text}")
    if json_out:
        with replaced(json_out) as f:
            f.write(json.dumps(metrics, indent=2, default=str) + "\n")


def _since(value: str | None) -> datetime | None:
    """`--since`: a date or ISO time, as UTC (a time without an offset is UTC, as the events' times are)."""
    from datetime import UTC, datetime

    try:
        start = None if value is None else datetime.fromisoformat(value)
    except ValueError:
        raise TaskRouterError(f"--since: not a date: {value!r}") from None
    return None if start is None else (start if start.tzinfo else start.replace(tzinfo=UTC)).astimezone(UTC)


review_app = typer.Typer(
    help="Label uncertain production requests and feed them back into training.", no_args_is_help=True
)
app.add_typer(review_app, name="review")


_REVIEW_EXPORT_OPTIONS: dict[str, list[Constraint]] = {
    "n": [Interval(Integral, 1, None, closed="left")],
    "low_confidence": [SHARE],
}


@review_app.command("export")
def review_export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="JSONL to write for labeling.")],
    db: Annotated[str, typer.Option(help="Telemetry database URL.")],
    n: Annotated[int, typer.Option(help="How many requests.")] = 200,
    low_confidence: Annotated[float, typer.Option(help="Also export requests below this confidence.")] = 0.8,
    training: Annotated[
        Path | None,
        typer.Option(help="The training file `review import` merges into: requests whose text it holds are skipped."),
    ] = None,
) -> None:
    """Write a label-stratified sample of escalated and low-confidence requests (needs stored text)."""
    _check_options(ctx, _REVIEW_EXPORT_OPTIONS, locals())
    _check_outputs({"--out": out}, None, [training])
    from routing.review import count_excluded, export_for_review

    known = _training_texts(training) if training is not None else ()
    events = _telemetry_events(db, "--db")
    k = export_for_review(events, out, n=n, low_confidence=low_confidence, exclude_texts=known)
    typer.echo(f"{k} requests -> {out}; fill in each 'label' and run: taskrouter review import")
    if training is not None:
        skipped = count_excluded(events, known, low_confidence=low_confidence)
        typer.echo(f"skipped {skipped} already in --training {training}")


def _training_texts(path: Path) -> tuple[str, ...]:
    """The texts of the training file `--training` names; one that cannot be read is an error naming the option."""
    from classifier.data import load_dataset
    from classifier.errors import DataError

    try:
        return load_dataset(path, unique=False).texts
    except DataError as exc:
        raise DataError(str(exc), path="--training") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})", path="--training") from None


@review_app.command("import")
def review_import(
    labels: Annotated[Path, typer.Option(help="The labeled JSONL from review export.")],
    into: Annotated[Path, typer.Option(help="Training JSONL to merge into.")],
    out: Annotated[Path | None, typer.Option(help="Write the merged file here instead.")] = None,
    new_labels: Annotated[
        bool, typer.Option(help="Accept labels the training file does not have yet (else they are refused).")
    ] = False,
) -> None:
    """Merge reviewed labels into a training file: duplicates skipped, conflicts reported."""
    from routing.review import import_reviewed

    s = import_reviewed(labels, into, out=out, new_labels=new_labels)
    typer.echo(f"added {s.added}, duplicates {s.duplicates}, unlabeled {s.unlabeled}, conflicts {len(s.conflicts)}")
    for c in s.conflicts:
        typer.echo(
            f"  conflict line {c['line']}: training says {c['existing']!r}, review says {c['reviewed']!r}: "
            f"{c['text']!r}"
        )


class EncoderName(StrEnum):
    base = "base"
    tuned = "tuned"


assets_app = typer.Typer(
    help="Build the serving files: those shipped in the package, and the int8 graph cached per machine.",
    no_args_is_help=True,
)
app.add_typer(assets_app, name="assets")


@assets_app.command("build")
def assets_build(
    dest: Annotated[Path | None, typer.Option(help="Folder to write; default: the package's assets folder.")] = None,
    encoder: Annotated[EncoderName, typer.Option(help="Which encoder's files.")] = EncoderName.base,
    source: Annotated[
        Path | None, typer.Option(help="The tuned model directory (tune-encoder --out); only with --encoder tuned.")
    ] = None,
) -> None:
    """Rebuild the shipped serving files (ONNX graph, tokenizer, static table) with torch."""
    if (encoder is EncoderName.tuned) != (source is not None):
        raise TaskRouterError("--encoder tuned needs --source DIR, and --source only goes with --encoder tuned")
    if source is not None and not source.is_dir():
        raise TaskRouterError(f"--source {source}: not a directory")
    _require("assets build", "torch", "transformers", "model2vec", "onnx", extra="train")
    from classifier.building import make_assets
    from classifier.serving import assets

    folder = dest if dest is not None else assets.ASSETS_DIR
    record = make_assets.build(folder, encoder=encoder.value, source=source)
    for name, entry in record["files"].items():
        typer.echo(f"{folder / name}  {entry['bytes'] / 1e6:.1f} MB  sha256 {entry['sha256'][:12]}")


@assets_app.command("int8")
def assets_int8(
    encoder: Annotated[EncoderName, typer.Option(help="Quantise this encoder's shipped graph.")] = EncoderName.base,
    check: Annotated[bool, typer.Option(help="Only verify the cached file: an error if it is missing or bad.")] = False,
) -> None:
    """Build the int8 graph (TASKROUTER_EMBEDDER=onnx-int8) into the cache ahead of time, e.g. in an image."""
    if not check:
        _require("assets int8", "onnx", extra="train")
    from classifier.serving import onnx_int8

    onnx_int8.build(allow_build=not check, encoder=encoder.value)
    typer.echo(onnx_int8.cached_model_path(encoder.value))


model_app = typer.Typer(help="Manage saved model directories.", no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("upgrade")
def model_upgrade(
    directory: Annotated[
        Path | None, typer.Argument(help="Model directory; default: the shipped model.", show_default=False)
    ] = None,
) -> None:
    """Rewrite a model directory's manifest in the current format (no retraining, same array files); a model
    already in it is left as it is."""
    from classifier.model_files import DEFAULT_MODEL_DIR, FORMAT_VERSION, MANIFEST, convert, load_manifest

    folder, _, _ = load_manifest(directory if directory is not None else DEFAULT_MODEL_DIR)  # a model, verified
    was = json.loads((folder / MANIFEST).read_bytes())["format_version"]  # load_manifest reads it as the current
    if was == FORMAT_VERSION:
        typer.echo(f"{folder}: already in the current format ({FORMAT_VERSION}); nothing changed")
        return
    typer.echo(
        f"{convert(folder)}: upgraded from format {was} to format {FORMAT_VERSION} (manifest rewritten; no "
        "retraining, the array files as they were)"
    )


ConfigOption = Annotated[
    Path | None, typer.Option(help="Routing config; default: $TASKROUTER_CONFIG, else the demo config.")
]
QueryFile = Annotated[
    Path | None, typer.Option("--file", help="Read the query from this file (UTF-8, the whole file) instead.")
]


@app.command()
def classify(
    queries: Annotated[
        list[str] | None, typer.Argument(help="Queries to classify; '-' reads one from stdin.", show_default=False)
    ] = None,
    model: Annotated[Path | None, typer.Option(help="Model directory; default: the shipped model.")] = None,
    file: Annotated[
        list[Path] | None,
        typer.Option("--file", metavar="<path>", help="Also classify this file's text as one query (repeatable)."),
    ] = None,
) -> None:
    """Classify queries with the cascade (stage 3 off) and print each decision."""
    texts = _read_queries(queries or [], file or [])
    from classifier.data import check_query
    from classifier.serving.cascade import Cascade

    texts = [check_query(t, field="query" if len(texts) == 1 else f"query {i + 1}") for i, t in enumerate(texts)]
    cascade = Cascade.load(model)
    width = max(9, *(len(label) for label in cascade.labels))  # labels of one's own can be longer than ours
    for q, d in zip(texts, cascade.classify_batch(texts), strict=True):
        conf = "" if d.confidence is None else f" {d.confidence:.2f}"
        shown = " ".join(q[:70].split())  # a query read from a file may span lines: one output line each
        typer.echo(f"{d.label:<{width}} {d.stage:<10}{conf}{' escalated' if d.escalated else ''}  {shown}")


@app.command()
def route(
    query: Annotated[
        str | None, typer.Argument(help="The query to route; '-' reads it from stdin.", show_default=False)
    ] = None,
    config: ConfigOption = None,
    file: QueryFile = None,
) -> None:
    """Print the decision and the pool a query would go to, without calling any model."""
    text = _read_query(query, file)
    from routing.complete import get_router

    tr = get_router(_config_path(config))
    d = tr.decide(text)
    conf = "n/a" if d.confidence is None else f"{d.confidence:.3f}"
    why = ""
    if d.escalated and not tr.config.taskrouter.llm_classifier.alias:
        why = " (below the threshold; no stage 3 is configured, so this label stands)"
    typer.echo(
        f"label={d.label} stage={d.stage} confidence={conf} escalated={d.escalated}{why} pool={tr.pool_for(d.label)}"
    )


@app.command()
def complete(
    query: Annotated[
        str | None, typer.Argument(help="The query to send; '-' reads it from stdin.", show_default=False)
    ] = None,
    config: ConfigOption = None,
    file: QueryFile = None,
) -> None:
    """Route the query and complete it; prints the reply and how it was served."""
    text = _read_query(query, file)
    from routing.results import RoutedCompletion
    from routing.router import TaskRouter

    with TaskRouter(_config_path(config)) as tr:  # closing writes this request's telemetry before exit
        r = tr.complete(text)
    assert isinstance(r, RoutedCompletion)  # not a stream
    typer.echo(r.text)
    typer.echo(
        f"-- label={r.decision.label} stage={r.decision.stage} escalated={r.decision.escalated} "
        f"requested={r.requested_pool} served={r.served_pool} deployment={r.deployment} fallback={r.fallback} "
        f"tokens={r.prompt_tokens}+{r.completion_tokens} cost=${r.cost_usd:.6f} latency={r.latency_s * 1000:.0f} ms"
    )


def _read_query(query: str | None, file: Path | None) -> str:
    """The one query of `route` and `complete`: the argument, stdin for '-', or the text of `--file`."""
    if query is not None and file is not None:
        raise TaskRouterError("give the query as an argument or with --file, not both")
    return _read_queries([query] if query is not None else [], [file] if file is not None else [])[0]


def _read_queries(queries: Sequence[str], files: Sequence[Path]) -> list[str]:
    """The arguments, with '-' replaced by stdin's text, then each file's text; trailing newlines are dropped
    (as the shell's "$(cat FILE)" drops them). An empty stdin or file, or one that cannot be read, is an error."""
    if not queries and not files:
        raise TaskRouterError("no query: give one as an argument, '-' to read it from stdin, or --file PATH")
    if list(queries).count("-") > 1:
        raise TaskRouterError("'-' (stdin) may be given only once")
    texts = [_stdin_text() if q == "-" else q for q in queries]
    return texts + [_file_text(f) for f in files]


def _stdin_text() -> str:
    return _decode(typer.get_binary_stream("stdin").read(), "stdin")


def _file_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TaskRouterError(f"--file {path}: file not found") from None
    except OSError as exc:
        raise TaskRouterError(f"--file {path}: cannot read it ({exc.strerror or exc})") from None
    return _decode(data, f"--file {path}")


def _decode(data: bytes, source: str) -> str:
    """UTF-8 text (a leading byte-order mark dropped); anything else is a one-line error naming `source`."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TaskRouterError(f"{source}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
    text = text.rstrip("\r\n")
    if not text.strip():
        raise TaskRouterError(f"{source}: no query (it is empty or only whitespace)")
    return text


def _config_path(config: Path | None) -> Path:
    """`--config`, else the file `$TASKROUTER_CONFIG` names, else the demo config (said on stderr)."""
    from routing.config import CONFIG_ENV, DEMO_CONFIG, config_from_env

    chosen = config or config_from_env()
    if chosen is not None:
        return chosen
    typer.echo(f"(no --config and no {CONFIG_ENV}: using the DEMO config, whose replies are mocks)", err=True)
    return DEMO_CONFIG


class _StderrHandler(logging.StreamHandler):
    """Writes to sys.stderr as it is when a line is logged, not as it was at setup (`main` may run in a test)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # under the handler's lock: `handle` holds it around `emit`
        super().emit(record)


FEW_ROWS_RECORD = "taskrouter_few_rows"
"""`classifier.training.train.FEW_ROWS_RECORD` (not imported: serving installs lack the training extras)."""


def _log_filter(record: logging.LogRecord) -> bool:
    """All but training's few-rows warning, which `train` prints in its summary: once, where the library logs it
    once per model trained (`--select-c` trains several). Python callers of `train_cascade` still get it."""
    return not hasattr(record, FEW_ROWS_RECORD)


def _log_to_stderr() -> None:
    """taskrouter's own log lines on stderr, INFO included: long one-off steps and training's phases say so."""
    logger = logging.getLogger("taskrouter")
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("[taskrouter %(asctime)s] %(message)s", "%H:%M:%S"))
        handler.addFilter(_log_filter)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # once, even when a library has configured the root logger


def _check_options(
    ctx: typer.Context,
    table: Mapping[str, Sequence[Constraint]],
    values: Mapping[str, object],
    *,
    exclusive: Iterable[tuple[str, str]] = (),
) -> None:
    """Check the options of the command running in `ctx` against its table, naming them as typed
    (`--max-error`); an option left out (None) is not checked."""
    flags = {p.name: p.opts[0] for p in ctx.command.params if p.name}
    given = {name: constraints for name, constraints in table.items() if values[name] is not None}
    validate_params(
        given, values, caller=f"`{ctx.command_path}`", exclusive=exclusive, name_of=lambda name: flags.get(name, name)
    )


def _require(command: str, *modules: str, extra: str) -> None:
    """A one-line error, not a traceback, where `command` needs a package the serving install leaves out."""
    from classifier.serving.filecache import is_installed

    missing = [m for m in modules if not is_installed(m)]
    if missing:
        raise TaskRouterError(
            f"`taskrouter {command}` needs {', '.join(missing)}, which the serving install leaves out: "
            f"pip install 'taskrouter[{extra}]'"
        )


def _fail(message: str) -> NoReturn:
    """`error: MESSAGE` on one line (a YAML parser's message spans several), exit status 1."""
    typer.echo("error: " + " ".join(line.strip() for line in message.splitlines() if line.strip()), err=True)
    sys.exit(1)


def main(args: Sequence[str] | None = None) -> None:
    """Entry point: run the app on `args` (default: the command line), turning taskrouter's errors, and a file
    that cannot be read or written, into one line on stderr and exit code 1."""
    _log_to_stderr()
    try:
        command = typer.main.get_command(app)
        _flags_without_type(command)
        command(args=args, prog_name="taskrouter", standalone_mode=False)
    except TaskRouterError as exc:
        _fail(str(exc))
    except OSError as exc:
        if exc.filename is None:  # e.g. a ConnectionError, whose message may hold a URL with its password
            _unexpected(exc)
        _fail(f"{exc.filename}: {exc.strerror or exc}")
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as exc:  # usage errors from typer's click: print them as click would
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        _unexpected(exc)


def _flags_without_type(command: Any) -> None:
    """Give each flag (`--static/--no-static`, `--help`, `--version`) of `command` and its subcommands an empty
    metavar: typer's help writes `<bool>` after a flag otherwise, as if it took a value."""
    for param in [*command.params, command.get_help_option(typer.Context(command))]:
        if param is not None and getattr(param, "is_flag", False) and not getattr(param, "count", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _flags_without_type(sub)


def _unexpected(exc: BaseException) -> NoReturn:
    """A bug, or a fault nothing names: where it happened, but not its message, which may quote a secret from the
    config or a URL (raised as it is when DEBUG_VARIABLE is set)."""
    if os.environ.get(DEBUG_VARIABLE):
        raise exc
    frames = "".join(traceback.format_tb(exc.__traceback__))
    typer.echo(
        f"Traceback (most recent call last):\n{frames}{type(exc).__module__}.{type(exc).__qualname__} "
        f"(message withheld: it may quote a secret; {DEBUG_VARIABLE}=1 shows it)",
        err=True,
    )
    sys.exit(1)


if __name__ == "__main__":
    main()
