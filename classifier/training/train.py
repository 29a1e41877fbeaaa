"""Train a whole cascade from labeled queries: measure the rules, fit the classifier, pick the threshold."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from numbers import Real
from os import PathLike
from pathlib import Path
from typing import Any, Unpack

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from ..data import MAX_QUERY_CHARS, Dataset, check_labels, check_query
from ..errors import InvalidParameterError
from ..model_files import check_model_out
from ..params import SEED, SHARE, Constraint, Interval, validate_params
from ..results import EMBEDDING, STATIC
from ..serving.cascade import Cascade
from ..serving.head import BatchContext
from ..serving.keywords import KeywordRules, load_rules
from ..serving.scope import Scope
from ..serving.stages import FewShotLLMStage, HeadStage, RulesStage, ScopeStage, Stage, StageTrainer
from ..window import window
from .estimator import ClassifierParams, TaskClassifier, check_classifier_params
from .fit_scope import DEFAULT_MAX_FALLBACK, fit_scope
from .source_folds import FoldScore, check_source_count, group_sources, paired, score_folds
from .threshold import choose_threshold, threshold_curve
from .tune import CrossFit

__all__ = [
    "DEFAULT_MAX_ESCALATION",
    "DEFAULT_STATIC_MAX_ERROR",
    "SELECTION_SCORES",
    "TrainParams",
    "TrainingReport",
    "select_by_folds",
    "train_cascade",
]

log = logging.getLogger("taskrouter.train")

DEFAULT_MAX_ESCALATION = 0.10
"""Default target: escalate at most this share of the held-out queries that reach stage 2."""
DEFAULT_STATIC_MAX_ERROR = 0.01
"""The static stage answers only where its held-out error on what it accepts stays within this."""
DEFAULT_STATIC_MAX_ERROR_OUT_OF_SOURCE = 0.02
"""...and where its error on calibration rows from other sources (`calibration`) stays within this: other sources
label by their own policy and style, so the same confidence errs more there (the public corpus: 3.0 % at the
threshold that held 1 % out-of-fold)."""
MIN_ROWS_PER_LABEL = 20
"""Below this many rows a label gets a warning: its held-out confidences are too few to trust."""
FEW_ROWS_RECORD = "taskrouter_few_rows"
"""The attribute of the log record of that warning: the labels and how many rows each needs."""
SELECTION_SCORES = ("balanced_accuracy", "macro_f1")
"""What `select_by_folds` can rank candidates by, the folds' mean of: balanced accuracy (the default: the mean of the
labels' recalls, which a lean toward the folds' largest label does not raise) or macro-F1 (which such a lean does:
the corpus is half `default`, so a weaker head that says `default` more often scores higher by it)."""
THRESHOLD_PRIOR_ROWS = 50
"""The escalation threshold read from n held-out confidences is pulled toward a default (halfway between chance
and certainty) as if the default had been read from this many: 17 rows keep a quarter of their own reading,
2,000 keep 98 %."""
LEARNING_CURVE = (0.25, 0.5)
"""Shares of the rows the learning curve refits on (the whole set is the model itself)."""


@dataclass(frozen=True)
class TrainingReport:
    """What training measured: cross-validated stage-2 metrics, the threshold, the rules switched off."""

    n: int
    label_counts: dict[str, int]
    cv_accuracy: float
    cv_macro_f1: float
    threshold: float
    target: dict[str, float]
    rules: list[dict]
    static_threshold: float | None = None
    static_coverage: float | None = None
    """Share of the held-out queries reaching stage 2 that the static head accepted (None: no static stage)."""
    learning_curve: dict[str, float] | None = None
    """Cross-validated stage-2 macro-F1 on 25 %, 50 % and all of the rows ("0.25", "0.5", "1.0")."""
    scope: Scope | None = None
    """The scope check chosen out-of-fold (None: a label had fewer than two rows)."""
    folds: list[FoldScore] | None = None
    """The cascade on out-of-source folds of the calibration rows (`classifier.training.source_folds`); None: no
    calibration rows, or their sources cannot be grouped so that each fold holds every label twice."""

    @property
    def folds_macro_f1(self) -> float | None:
        """Mean macro-F1 over the out-of-source folds (None: no folds)."""
        return float(np.mean([f.macro_f1 for f in self.folds])) if self.folds else None

    @property
    def folds_balanced_accuracy(self) -> float | None:
        """Mean balanced accuracy (the mean of the labels' recalls) over the out-of-source folds (None: no folds)."""
        return float(np.mean([f.balanced_accuracy for f in self.folds])) if self.folds else None

    @property
    def few_rows(self) -> dict[str, int]:
        """Labels with fewer than MIN_ROWS_PER_LABEL rows, and how many more each needs."""
        return {k: MIN_ROWS_PER_LABEL - v for k, v in self.label_counts.items() if v < MIN_ROWS_PER_LABEL}

    @property
    def disabled_rules(self) -> list[dict]:
        return [r for r in self.rules if not r["enabled"]]


_TRAIN_PARAMS: dict[str, list[Constraint]] = {
    "data": [Dataset],
    "out": [None, str, PathLike],
    "rules_path": [None, str, PathLike],
    "precision_floor": [SHARE],
    "max_escalation": [None, SHARE],
    "max_error": [None, SHARE],
    "static": [bool],
    "static_features": [None, bool],
    "static_max_error": [SHARE],
    "static_C": [None, Interval(Real, 0, None, closed="neither")],
    "random_state": [SEED],
    "progress": [None, bool],
    "cv_vectors": [None, CrossFit],
    "scope_max_fallback": [Interval(Real, 0, 1, closed="neither")],
    "calibration": [None, Dataset],
    "static_max_error_out_of_source": [SHARE],
    "stages": [list, tuple],
    "selection": [None, list],
}


class TrainParams(ClassifierParams, total=False):
    """The keyword parameters of `train_cascade` that `select_by_folds` passes on (it sets `out`, `calibration`
    and `selection` itself), and the `TaskClassifier` ones."""

    rules_path: str | PathLike | None
    precision_floor: float
    max_escalation: float | None
    max_error: float | None
    static: bool
    static_features: bool | None
    static_max_error: float
    static_C: float | None
    random_state: int
    progress: bool | None
    cv_vectors: CrossFit | None
    scope_max_fallback: float
    static_max_error_out_of_source: float
    stages: Sequence[StageTrainer]


def train_cascade(
    data: Dataset,
    *,
    out: str | Path | None = None,
    rules_path: str | Path | None = None,
    precision_floor: float = 0.98,
    max_escalation: float | None = None,
    max_error: float | None = None,
    static: bool = True,
    static_features: bool | None = None,
    static_max_error: float = DEFAULT_STATIC_MAX_ERROR,
    static_C: float | None = None,
    random_state: int = 0,
    progress: bool | None = None,
    cv_vectors: CrossFit | None = None,
    scope_max_fallback: float = DEFAULT_MAX_FALLBACK,
    calibration: Dataset | None = None,
    static_max_error_out_of_source: float = DEFAULT_STATIC_MAX_ERROR_OUT_OF_SOURCE,
    stages: Sequence[StageTrainer] = (),
    selection: list[dict] | None = None,
    **classifier_params: Unpack[ClassifierParams],
) -> tuple[Cascade, TrainingReport]:
    """Train on `data`; save to `out` when given. The threshold target defaults to DEFAULT_MAX_ESCALATION.

    With `static`, a second head over the static (distilled) embedder is trained too, and its threshold is the
    lowest whose held-out error on the queries it accepts is within `static_max_error`. The MiniLM threshold
    is then chosen on the queries the static head passes on: with `max_escalation`, so that at most that share
    of all stage-2 queries is escalated; with `max_error`, for that error on what MiniLM accepts.
    `static_features` (default: as `static`) has the MiniLM head read the static vectors too; it needs `static`.
    `static_C`: the static head's C (default: the MiniLM head's, `classifier_params`' C): a small C softens its
    probabilities, and its threshold, read for the same error, then lets it answer fewer queries.
    `cv_vectors` (with the tuned encoder they were made for) stand in for the vectors of the rows the encoder was
    tuned on while the heads are cross-validated, so that thresholds are picked from confidences like those of
    new traffic (`tune.cross_fit`).
    The scope check (`classifier.serving.scope`, served when a fallback label is configured) sends at most
    `scope_max_fallback` of held-out in-scope rows to the fallback label.
    `calibration`: labeled rows from other sources than `data`, never trained on, that the thresholds must hold on
    as well: the static threshold is raised until its error there is within `static_max_error_out_of_source`, and
    the escalation budget (`max_escalation`) is read on them instead of out-of-fold, since new traffic looks more
    like other sources than like held-out rows of the training sources.
    `stages`: trainers of stages of your own (`stages.StageTrainer`), fitted on all rows and served in the order
    given after the rules; the rows they answer are left out of the heads' thresholds, as in serving.
    With `calibration` rows that carry their source, the cascade is also scored on out-of-source folds of them
    (`classifier.training.source_folds`; `TrainingReport.folds`, and the manifest). `selection`: the candidates
    `select_by_folds` compared, kept in the manifest. `classifier_params`: the heads' `ClassifierParams`.
    """
    validate_params(_TRAIN_PARAMS, locals(), caller="train_cascade", exclusive=[("max_escalation", "max_error")])
    check_classifier_params(classifier_params, caller="train_cascade")
    if out is not None:
        check_model_out(out)  # a folder a save would empty is refused before the training, not after it
    if calibration is not None and calibration.sources is not None:  # its folds are made after all training
        check_source_count(calibration.sources, path=calibration.path)
    if max_escalation is None and max_error is None:
        max_escalation = DEFAULT_MAX_ESCALATION
    static_features = static if static_features is None else static_features
    if static_features and not static:
        raise ValueError("static_features needs static=True: the static head's probes check the table at load")
    if static_C is not None and not static:
        raise InvalidParameterError("static_C", static_C, "None: static=False trains no static head")
    texts, labels = list(data.texts), list(data.labels)
    if len(texts) != len(labels):
        got = f"{len(texts)} texts and {len(labels)} labels"
        raise InvalidParameterError("data", got, "a Dataset with one label per text", caller="train_cascade")
    texts = [check_query(t, field=f"data.texts[{i}]", max_chars=MAX_QUERY_CHARS) for i, t in enumerate(texts)]
    texts = [window(t) for t in texts]  # every stage reads what serving reads: a long row's head and tail
    check_labels(labels, path=data.path)  # bad texts and labels fail before the first progress line
    truth = np.array(labels)
    rules = KeywordRules(load_rules(rules_path)).calibrate(texts, labels, precision_floor=precision_floor)
    extra = [_fit_stage(trainer, texts, labels) for trainer in stages]
    reaches_stage2 = np.array([rules.classify(t).label is None for t in texts]) & _passed_on(extra, texts)
    log.info(
        "MiniLM head: embedding %d queries (a progress bar; about 10 s for 4,000 on 2 cores), then %d-fold "
        "cross-validation and a final fit (about 30 s)",
        len(texts),
        classifier_params.get("cv", 5),
    )
    encoder = classifier_params.get("encoder", "base")
    cv_main, cv_static = _cross_fitted(texts, encoder, cv_vectors, static_features)
    clf = TaskClassifier(
        random_state=random_state, progress=progress, static_features=static_features, **classifier_params
    ).fit(texts, labels, cv_embeddings=cv_main)

    heads: dict[str, dict] = {}  # stage -> threshold, target and curve, chosen by `_pick` alike
    held = _Calibration(calibration, rules, extra) if calibration is not None else None
    fast, passed_on, static_coverage, static_in_fold = None, reaches_stage2, None, None
    if static:
        from ..serving.static_embedding import StaticMiniLMEmbedder

        log.info("static head: the same over the token table (embedding and cross-validation, about 20 s)")
        table = StaticMiniLMEmbedder(encoder=encoder)
        own = ClassifierParams(**classifier_params)
        if static_C is not None:
            own["C"] = static_C
        fast = TaskClassifier(random_state=random_state, progress=progress, embedder=table, **own)
        fast.fit(texts, labels, cv_embeddings=cv_static)
        heads[STATIC] = _pick(fast, truth, reaches_stage2, {"max_error": static_max_error})
        passed_on = reaches_stage2 & (_cv_proba(fast).max(axis=1) < heads[STATIC]["threshold"])
        static_in_fold = heads[STATIC]["threshold"]  # read on the training rows alone (out-of-fold)
        if held is not None:
            read = held.static_threshold(fast, static_max_error_out_of_source)
            if read["threshold"] > heads[STATIC]["threshold"]:  # the calibration rows bind: keep their curve
                heads[STATIC].update(read)
            heads[STATIC]["target"]["max_error_out_of_source"] = static_max_error_out_of_source
            passed_on = reaches_stage2 & (_cv_proba(fast).max(axis=1) < heads[STATIC]["threshold"])
        static_coverage = float(1 - passed_on.sum() / max(1, reaches_stage2.sum()))
        if not passed_on.any():  # the static head took every held-out query: pick MiniLM's threshold on all
            passed_on = reaches_stage2

    if max_escalation is not None:  # at most that share of all stage-2 queries, taken from those passed on
        share = min(1.0, max_escalation * reaches_stage2.sum() / max(1, passed_on.sum()))
        heads[EMBEDDING] = _pick(clf, truth, passed_on, {"max_escalation": share})
        heads[EMBEDDING]["target"] = {"max_escalation": max_escalation}
    else:
        assert max_error is not None  # max_escalation gets its default above when neither is given
        heads[EMBEDDING] = _pick(clf, truth, passed_on, {"max_error": max_error})
    heads[EMBEDDING]["threshold"] = _shrunk(heads[EMBEDDING]["threshold"], int(passed_on.sum()), len(clf.classes_))
    if held is not None and max_escalation is not None:
        static_threshold = heads[STATIC]["threshold"] if fast is not None else None
        heads[EMBEDDING].update(held.escalation_threshold(clf, fast, static_threshold, max_escalation))
        heads[EMBEDDING]["target"] = {"max_escalation_out_of_source": max_escalation}
    threshold, target = heads[EMBEDDING]["threshold"], heads[EMBEDDING]["target"]
    oof_pred = clf.classes_[_cv_proba(clf).argmax(axis=1)]
    log.info("learning curve: refitting the MiniLM head on 25 % and 50 % of the rows (vectors are cached)")
    curve = _learning_curve(texts, labels, random_state, static_features, classifier_params, cv_main)
    curve["1.0"] = float(f1_score(labels, oof_pred, average="macro"))
    minilm = clf.example_embeddings_ if cv_main is None else cv_main[:, : clf.example_embeddings_.shape[1]]
    scope = fit_scope(minilm, labels, max_fallback=scope_max_fallback, cv=clf.cv, random_state=random_state)

    report = TrainingReport(
        n=len(texts),
        label_counts={k: labels.count(k) for k in clf.classes_.tolist()},
        cv_accuracy=float(accuracy_score(labels, oof_pred)),
        cv_macro_f1=float(f1_score(labels, oof_pred, average="macro")),
        threshold=threshold,
        target=target,
        rules=rules.to_list(),
        static_threshold=heads[STATIC]["threshold"] if fast is not None else None,
        static_coverage=static_coverage,
        learning_curve=curve,
        scope=scope,
    )
    if report.few_rows:
        log.warning(
            "few rows: %s (each label needs at least %d for its confidences to mean much)",
            ", ".join(f"{k} has {report.label_counts[k]}, add {more}" for k, more in report.few_rows.items()),
            MIN_ROWS_PER_LABEL,
            extra={FEW_ROWS_RECORD: report.few_rows},  # the command line prints its own line instead (routing.cli)
        )
    before_heads: list[Stage] = [RulesStage(rules), *extra]
    served = list(before_heads)
    if fast is not None:
        served.append(HeadStage(STATIC, fast.head_, heads[STATIC]["threshold"]))
    served.append(HeadStage(EMBEDDING, clf.head_, threshold))
    cascade = Cascade.from_stages(served)
    if held is not None and calibration is not None:
        refit = _FoldThresholds(
            held, clf, fast, static_in_fold, static_max_error_out_of_source, max_escalation, max_error,
            reaches_stage2, truth,
        )  # fmt: skip
        scores = refit.score_folds(before_heads, calibration, cascade)
        if scores:
            report = replace(report, folds=scores)
    if out is not None:
        entries = [s.to_manifest() for s in served]
        entries.insert(1 + len(extra), ScopeStage.entry())
        entries.append(FewShotLLMStage.entry())
        log.info("saving to %s and loading it back", out)
        clf.save(
            out,
            static=fast,
            heads=heads,
            stages=entries,
            cascade={
                "precision_floor": precision_floor,
                "rules": rules.to_list(),
                "scope": scope.to_dict() if scope is not None else None,
            },
            training={
                "n": report.n,
                "label_counts": report.label_counts,
                "data_sha256": data.sha256(),
                "data_file": _name(data),
                "embedder_backend": _backend(clf),
                "encoder": clf.encoder,
                "static_C": fast.C if fast is not None else None,
                "learning_curve": curve,
                "selection": selection,
                "calibration": None
                if held is None
                else {
                    "n": len(held.texts),
                    "data_sha256": held.sha256,
                    "data_file": _name(calibration),
                    "rows_per_source_and_label": held.counts,
                    "folds": [f.to_dict() for f in report.folds] if report.folds else None,
                    "folds_macro_f1": report.folds_macro_f1,
                    "folds_balanced_accuracy": report.folds_balanced_accuracy,
                },
            },
            metrics={"cv_accuracy": report.cv_accuracy, "cv_macro_f1": report.cv_macro_f1, "cv_folds": clf.cv},
        )
        cascade = Cascade.load(out)
    return cascade, report


def select_by_folds(
    data: Dataset,
    *,
    calibration: Dataset,
    candidates: Sequence[dict],
    out: str | Path | None = None,
    score: str = "balanced_accuracy",
    **params: Unpack[TrainParams],
) -> tuple[Cascade, TrainingReport, list[dict]]:
    """Train once per candidate (`TrainParams` such as `{"C": 1.0}` or `{"static_features": False}`, over
    `params`), keep the one with the best mean `score` (one of SELECTION_SCORES) on the out-of-source folds of
    `calibration`, and save it to `out`. Returns the kept cascade and report, and each candidate's fold scores."""
    if not candidates or not all(isinstance(c, Mapping) for c in candidates):
        raise InvalidParameterError("candidates", candidates, "a non-empty list of parameter dicts")
    if score not in SELECTION_SCORES:
        raise InvalidParameterError("score", score, f"one of {', '.join(SELECTION_SCORES)}")
    for candidate in candidates:  # every candidate is checked before the first is trained
        _check_train_params({**params, **candidate}, caller="select_by_folds")
    if calibration.sources is not None:
        check_source_count(calibration.sources, path=calibration.path)
    if out is not None:
        check_model_out(out)
    if calibration.sources is None or not group_sources(calibration.sources, calibration.labels):
        raise InvalidParameterError(
            "calibration", _name(calibration), "rows from sources that group into folds holding every label twice"
        )
    table: list[dict[str, Any]] = []
    folds: list[list[FoldScore]] = []
    for candidate in candidates:
        log.info("candidate %s: training and scoring it on the out-of-source folds", candidate)
        _, report = train_cascade(data, calibration=calibration, **{**params, **candidate})
        assert report.folds, "the calibration sources group into folds: checked above"
        folds.append(report.folds)
        table.append(
            {
                "params": dict(candidate),
                "folds_macro_f1": report.folds_macro_f1,
                "folds_balanced_accuracy": report.folds_balanced_accuracy,
                "macro_f1": {f.fold: f.macro_f1 for f in report.folds},
                "balanced_accuracy": {f.fold: f.balanced_accuracy for f in report.folds},
                "escalated": {f.fold: f.escalated for f in report.folds},
            }
        )
    best = best_candidate(table, score)
    kept = folds[next(i for i, row in enumerate(table) if row is best)]
    for row, scored in zip(table, folds, strict=True):
        row["chosen"] = row is best
        row["chosen_by"] = score
        against = paired(kept, scored)  # row by row: is the kept one's lead more than a coin's?
        row["against_kept"] = {"kept_only": against["a_only"], "this_only": against["b_only"],
                               "mcnemar_p": against["mcnemar_p"]}  # fmt: skip
    log.info("kept %s: mean out-of-source %s %.4f", best["params"], score, best[f"folds_{score}"])
    cascade, report = train_cascade(
        data, out=out, calibration=calibration, selection=table, **{**params, **best["params"]}
    )
    return cascade, report, table


def best_candidate(table: Sequence[Mapping[str, Any]], score: str) -> Mapping[str, Any]:
    """The row of `select_by_folds`' table with the highest `folds_<score>`; the first of equals (candidates are
    tried in the order given)."""
    return max(table, key=lambda row: row[f"folds_{score}"])


class _Calibration:
    """Labeled rows from other sources than the training data, which thresholds are read on as well."""

    def __init__(self, data: Dataset, rules: KeywordRules, extra: Sequence[Stage] = ()) -> None:
        self.texts = [window(t) for t in data.texts]  # as served
        self.truth = np.array(data.labels)
        self.reaches_stage2 = np.array([rules.classify(t).label is None for t in self.texts])
        self.reaches_stage2 &= _passed_on(extra, self.texts)  # as on the training rows: what the stages answer
        self.sha256 = data.sha256()
        self.sources = data.sources
        self._proba: dict[int, np.ndarray] = {}
        log.info("calibration: %d rows from other sources; thresholds must hold on them too", len(self.texts))

    @property
    def counts(self) -> dict[str, dict[str, int]] | None:
        """Rows per source and label (None: the rows carry no source)."""
        if self.sources is None:
            return None
        out: dict[str, dict[str, int]] = {}
        for source, label in zip(self.sources, self.truth.tolist(), strict=True):
            out.setdefault(source, {}).setdefault(label, 0)
            out[source][label] += 1
        return out

    def folds(self) -> list[tuple[str, ...]]:
        """Groups of the sources that each hold every label from two sources ([] when they cannot)."""
        if self.sources is None:
            log.info("calibration rows carry no source: no out-of-source folds")
            return []
        folds = group_sources(self.sources, self.truth.tolist())
        if not folds:
            log.info("calibration sources cannot be grouped so that each fold holds every label from two sources")
        return folds

    def proba(self, clf: TaskClassifier) -> np.ndarray:
        if id(clf) not in self._proba:
            self._proba[id(clf)] = clf.predict_proba(self.texts)
        return self._proba[id(clf)]

    def static_threshold(self, fast: TaskClassifier, max_error: float, rows: np.ndarray | None = None) -> dict:
        """The lowest static threshold whose error on the calibration rows reaching stage 2 (of `rows`, a mask;
        all when None) is within `max_error`, with the curve it was read from (`_pick`'s keys)."""
        reach = self.reaches_stage2 if rows is None else self.reaches_stage2 & rows
        return self._read(fast, reach, max_error=max_error)

    def escalation_threshold(
        self,
        clf: TaskClassifier,
        fast: TaskClassifier | None,
        static_threshold: float | None,
        budget: float,
        rows: np.ndarray | None = None,
    ) -> dict:
        """The MiniLM threshold escalating at most `budget` of the calibration rows reaching stage 2 (of `rows`),
        with the curve it was read from (over the rows the static stage passes on)."""
        reach = self.reaches_stage2 if rows is None else self.reaches_stage2 & rows
        passed_on = reach.copy()
        if fast is not None and static_threshold is not None:
            passed_on &= self.proba(fast).max(axis=1) < static_threshold
        if not passed_on.any():
            return {"threshold": 0.0, "curve": []}
        return self._read(clf, passed_on, max_escalation=min(1.0, budget * reach.sum() / passed_on.sum()))

    def _read(self, clf: TaskClassifier, rows: np.ndarray, **target: float) -> dict:
        """`clf`'s threshold for `target` on the rows `rows` selects, with the curve it was read from."""
        p = self.proba(clf)[rows]
        correct = clf.classes_[p.argmax(axis=1)] == self.truth[rows]
        conf = p.max(axis=1)
        return {"threshold": choose_threshold(conf, correct, **target), "curve": threshold_curve(conf, correct)}


@dataclass(frozen=True)
class _FoldThresholds:
    """Scores each fold of the calibration rows with thresholds read as training reads them, but on the other folds'
    rows only: a fold's score then says what the thresholds do on sources they were not read on."""

    held: _Calibration
    clf: TaskClassifier
    fast: TaskClassifier | None
    static_in_fold: float | None
    """The static threshold read out-of-fold on the training rows (None: no static stage)."""
    static_max_error: float
    """The static stage's error target on the calibration rows (`static_max_error_out_of_source`)."""
    max_escalation: float | None
    max_error: float | None
    reaches_stage2: np.ndarray
    """Training rows no rule or stage of the user's own answers."""
    truth: np.ndarray
    """Training labels."""

    def score_folds(self, first: Sequence[Stage], data: Dataset, served: Cascade) -> list[FoldScore]:
        """Every fold of `data` (the calibration rows) scored; [] when they group into no folds. A single fold has
        no other rows to read thresholds on: it is scored with the model's own, `served`'s."""
        folds = self.held.folds()
        if not folds:
            return []
        log.info("scoring the cascade on %d out-of-source folds of the calibration rows", len(folds))
        if len(folds) > 1:
            return [self.score(first, data, group, i) for i, group in enumerate(folds)]
        own = {s.name: s.threshold for s in served.stages if isinstance(s, HeadStage)}
        (fold,) = score_folds(served, data, folds)
        return [replace(fold, static_threshold=own.get(STATIC), escalation_threshold=own[EMBEDDING])]

    def static(self, rows: np.ndarray) -> float | None:
        """The static threshold training reads when given only these calibration rows (a mask)."""
        if self.fast is None or self.static_in_fold is None:
            return None
        read = self.held.static_threshold(self.fast, self.static_max_error, rows)["threshold"]
        return max(self.static_in_fold, read)

    def minilm(self, static_threshold: float | None, rows: np.ndarray) -> float:
        """The MiniLM threshold training reads with that static threshold and those calibration rows."""
        if self.max_escalation is not None:
            return self.held.escalation_threshold(self.clf, self.fast, static_threshold, self.max_escalation, rows)[
                "threshold"
            ]
        assert self.max_error is not None  # one of the two targets is set (train_cascade)
        passed = self.reaches_stage2
        if self.fast is not None and static_threshold is not None:  # an error target is read on training rows
            passed = self.reaches_stage2 & (_cv_proba(self.fast).max(axis=1) < static_threshold)
            passed = passed if passed.any() else self.reaches_stage2
        picked = _pick(self.clf, self.truth, passed, {"max_error": self.max_error})["threshold"]
        return _shrunk(picked, int(passed.sum()), len(self.clf.classes_))

    def score(self, first: Sequence[Stage], data: Dataset, group: Sequence[str], index: int) -> FoldScore:
        """The cascade `first` + the heads, with thresholds read off this fold, scored on fold `index` (`group`)."""
        assert self.held.sources is not None  # only calibration rows with sources are grouped into folds
        in_fold = np.isin(np.array(self.held.sources), list(group))
        assert (~in_fold).any(), "one fold holds every row: it is scored with the model's own thresholds"
        stages = list(first)
        static = self.static(~in_fold)
        if self.fast is not None and static is not None:
            stages.append(HeadStage(STATIC, self.fast.head_, static))
        threshold = self.minilm(static, ~in_fold)
        stages.append(HeadStage(EMBEDDING, self.clf.head_, threshold))
        keep = np.flatnonzero(in_fold).tolist()
        rows = Dataset(
            tuple(data.texts[i] for i in keep), tuple(data.labels[i] for i in keep), data.path,
            tuple(self.held.sources[i] for i in keep),
        )  # fmt: skip
        (fold,) = score_folds(Cascade.from_stages(stages), rows, [tuple(group)])
        return replace(fold, fold=chr(ord("A") + index), static_threshold=static, escalation_threshold=threshold)


def _check_train_params(params: Mapping[str, Any], *, caller: str) -> None:
    """Raise InvalidParameterError for a key of `params` that is not one of `TrainParams`, or a value out of range."""
    for key, value in params.items():
        if key not in TrainParams.__optional_keys__:
            expected = (
                f"left out: {caller} passes on only train_cascade's keyword parameters (but out, calibration and "
                f"selection, which it sets) and TaskClassifier's {', '.join(ClassifierParams.__annotations__)}"
            )
            raise InvalidParameterError(key, value, expected, caller=caller)
    given = {"max_escalation": None, "max_error": None, **params}
    table = {k: v for k, v in _TRAIN_PARAMS.items() if k in given}
    validate_params(table, given, caller=caller, exclusive=[("max_escalation", "max_error")])
    check_classifier_params({k: v for k, v in params.items() if k in ClassifierParams.__optional_keys__}, caller=caller)


def _fit_stage(trainer: StageTrainer, texts: list[str], labels: list[str]) -> Stage:
    """A stage of the user's own, fitted on all rows; it must be saveable (a registered `kind`)."""
    stage = trainer.fit(texts, labels)
    if not isinstance(stage, Stage) or stage.kind is None:
        raise InvalidParameterError("stages", trainer, "trainers whose fit() gives a Stage with a `kind`")
    return stage


def _passed_on(stages: Sequence[Stage], texts: list[str]) -> np.ndarray:
    """Which rows no stage of `stages` answers (all of them when there are none)."""
    passed = np.ones(len(texts), dtype=bool)
    for stage in stages:
        rows = np.flatnonzero(passed)
        results = stage.classify_batch([texts[i] for i in rows], BatchContext([texts[i] for i in rows]))
        passed[rows[[stage.accepts(r) for r in results]]] = False
    return passed


def _shrunk(threshold: float, n: int, n_labels: int) -> float:
    """`threshold`, read from `n` held-out confidences, pulled toward halfway between chance and certainty by
    THRESHOLD_PRIOR_ROWS pseudo-rows, and kept strictly between chance and 1 (few rows give 1.0 or 0.0 otherwise:
    every query escalated, or none)."""
    chance = 1 / n_labels
    prior = (1 + chance) / 2
    mixed = (n * min(threshold, 1.0) + THRESHOLD_PRIOR_ROWS * prior) / (n + THRESHOLD_PRIOR_ROWS)
    return float(np.clip(mixed, chance + 0.01, 0.99))


def _learning_curve(
    texts: list[str],
    labels: list[str],
    seed: int,
    static_features: bool,
    params: ClassifierParams,
    cv_main: np.ndarray | None,
) -> dict[str, float]:
    """Cross-validated macro-F1 of the MiniLM head refitted on each share of LEARNING_CURVE of the rows
    (stratified, seeded; on the cross-fitted vectors where the head had them); a share too small for two rows
    per label is left out."""
    from sklearn.model_selection import train_test_split

    out: dict[str, float] = {}
    for share in LEARNING_CURVE:
        try:
            idx, _ = train_test_split(np.arange(len(texts)), train_size=share, stratify=labels, random_state=seed)
        except ValueError:  # a label with too few rows to split
            continue
        y = [labels[i] for i in idx]
        if min(y.count(k) for k in set(labels)) < 2:
            continue
        clf = TaskClassifier(random_state=seed, progress=False, static_features=static_features, **params)
        clf.fit([texts[i] for i in idx], y, cv_embeddings=None if cv_main is None else cv_main[idx])
        out[str(share)] = float(f1_score(y, clf.classes_[_cv_proba(clf).argmax(axis=1)], average="macro"))
    return out


def _cross_fitted(
    texts: list[str], encoder: str, cv_vectors: CrossFit | None, static_features: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The vectors the two heads cross-validate on: the cross-fitted ones where `cv_vectors` holds a text, the
    served ones elsewhere (rows the encoder was not tuned on are new to it already)."""
    if cv_vectors is None:
        return None, None
    from ..serving import assets
    from ..serving.embedding import serving_embedder
    from ..serving.encoder import ENCODERS
    from ..serving.static_embedding import StaticMiniLMEmbedder

    graph = ENCODERS["tuned"].onnx_file
    installed = assets.recorded_sha256(graph) if assets.installed(graph) else None
    if encoder != "tuned" or cv_vectors.encoder_sha256 != installed:
        raise InvalidParameterError(
            "cv_vectors",
            f"vectors for the tuned graph {cv_vectors.encoder_sha256[:12]}",
            f"those of the encoder trained with ({encoder}; the installed tuned graph is {str(installed)[:12]})",
        )
    found, minilm, table = cv_vectors.lookup(texts)
    log.info(
        "cross-validating on cross-fitted vectors for %d of %d rows (those the encoder was tuned on)",
        int(found.sum()),
        len(texts),
    )
    rest = [t for t, f in zip(texts, found, strict=True) if not f]
    if rest:
        minilm[~found] = serving_embedder(encoder).encode(rest)
        table[~found] = StaticMiniLMEmbedder(encoder=encoder).encode(rest)
    return (np.hstack([minilm, table]) if static_features else minilm), table


def _pick(clf: TaskClassifier, truth: np.ndarray, mask: np.ndarray, target: dict[str, float]) -> dict:
    """A stage's threshold for `target` from its head's out-of-fold confidences on the queries `mask` selects,
    with the curve it was read from."""
    proba = _cv_proba(clf)
    conf = proba.max(axis=1)[mask]
    correct = (clf.classes_[proba.argmax(axis=1)] == truth)[mask]
    return {
        "threshold": choose_threshold(conf, correct, **target),
        "target": dict(target),
        "curve": threshold_curve(conf, correct),
    }


def _name(data: Dataset | None) -> str | None:
    return Path(data.path).name if data is not None and data.path else None


def _backend(clf: TaskClassifier) -> str:
    """The MiniLM backend the head was fitted with (`onnx-int8`, `onnx` or `torch`)."""
    from ..serving.embedding import serving_embedder

    return str(getattr(clf.embedder if clf.embedder is not None else serving_embedder(clf.encoder), "backend", "?"))


def _cv_proba(clf: TaskClassifier) -> np.ndarray:
    """The head's out-of-fold probabilities, which thresholds are picked from (None when it was fitted with cv < 2)."""
    if clf.cv_proba_ is None:
        raise ValueError(f"cv must be >= 2 to pick thresholds from out-of-fold confidences, got {clf.cv}")
    return clf.cv_proba_
