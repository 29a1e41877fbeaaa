"""The cascade: keyword rules → static classifier → MiniLM classifier → (optional) LLM classifier.

No I/O of its own."""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np

from ..data import check_query
from ..errors import ConfigError, InvalidParameterError, ModelFileError, TaskRouterError
from ..params import COUNT, THRESHOLD, Constraint, validate_params
from ..results import BUDGET_SPENT, EMBEDDING, LLM, SCOPE, STATIC, Decision, StageResult
from ..window import HEAD_CHARS, TAIL_CHARS, window
from .budget import EscalationBudget
from .head import BatchContext, LinearHead
from .keywords import KeywordRules
from .priors import check_priors, weights_for
from .stages import (
    REGISTRY,
    FewShotLLMStage,
    HeadStage,
    LLMStage,
    LoadContext,
    RulesStage,
    ScopeStage,
    Stage,
    StageManifest,
)

__all__ = ["DEFAULT_CACHE_SIZE", "Cascade", "CacheInfo", "LLMStage"]

DEFAULT_CACHE_SIZE = 10_000
"""Decisions a cascade remembers by default (about 1 kB each)."""

_S = TypeVar("_S", bound=Stage)


class CacheInfo(NamedTuple):
    """Counters of a cascade's decision cache, as `functools.lru_cache` reports them."""

    hits: int
    misses: int
    maxsize: int
    currsize: int


class Cascade:
    """Classify queries cheapest-first; a stage answers or passes the query on (see `stages`).

    Stages: keyword rules ("heuristic"); when the model has one, a static-embedding head ("static": a token
    table distilled from MiniLM, well under a millisecond per query) that answers only at or above
    `static_threshold`;
    the MiniLM head ("embedding"), which answers at or above `threshold` and, when trained with
    `static_features`, reads the static vectors too (made once per batch, kept in the batch's context); and the
    LLM ("llm") for the rest.
    Escalation means passing a query on from the MiniLM head (the last stage that always names a label, whose
    guess stands when no later stage answers).

    Decisions past the keyword rules are remembered in a bounded, thread-safe LRU cache (`cache_size`
    entries; 0 switches it off), keyed on the query as every stage past the rules reads it: each run of word
    breaks made one space, lower-cased (lower-cased tokens, n-grams of whitespace-split words). A word break is a
    character both the tokenizers and the n-grams split on (space, tab, newline, no-break and other Unicode
    spaces); \\v, \\f, \\x1c-\\x1f and \\x85 are not one (the n-grams split on them, the tokenizers delete
    them), so "what\\x1fis" is a key of its own, not "what is". Lower-cased one character at a time, as the
    tokenizers do, and not case-folded: folding makes "Straße" and "strasse" one key, and the stages read them
    differently; a capital sigma stays in the key, since the n-grams lower a word-final one to ς and the
    tokenizers to σ. The rules are case- and line-sensitive, so a variant runs them on its exact text before the
    cache is asked; an exact repeat of the text that made the entry skips them as well (they did not fire on
    it), so it costs two hashes and a dict lookup. A hit returns the stored `Decision` object itself, trail
    latencies included. Stage-3 answers are cached too (that is where the time and money go); a decision where
    stage 3 was asked and gave no usable answer is not, so the query is asked again next time.
    Every stage, and the cache key, reads a bounded `window` of each query: its first and last characters
    (`classifier.window`; default `HEAD_CHARS` + `TAIL_CHARS`), so a query of any length costs about as much as
    one of that length. `window=None` reads whole texts.
    The cache assumes the stages are not changed in place: `with_llm` returns a cascade with a cache of its
    own, and `cache_clear()` empties it.
    `with_priors` (or `load(priors=...)`) re-weights the heads' probabilities to the label mix of the traffic
    (`classifier.serving.priors`); each decision records the mix it was made under.
    `with_budget` caps the share of queries escalated at run time (`classifier.serving.budget`): a query the
    budget holds back keeps the MiniLM head's guess, not escalated, its trail noting why, and is not cached.

    >>> cascade = Cascade.load()                       # the shipped model, stage 3 off
    >>> cascade.classify("derivative of x^3").label    # doctest: +SKIP
    'math'
    """

    _init_params: dict[str, list[Constraint]] = {
        "threshold": [THRESHOLD],
        "static_threshold": [THRESHOLD],
        "few_shot_k": [COUNT],
        "cache_size": [COUNT],
    }

    def __init__(
        self,
        classifier: LinearHead,
        rules: KeywordRules | None,
        threshold: float,
        *,
        static: LinearHead | None = None,
        static_threshold: float = 1.0,
        llm: LLMStage | None = None,
        few_shot_k: int = 8,
        manifest: dict | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        window: tuple[int, int] | None = (HEAD_CHARS, TAIL_CHARS),
    ) -> None:
        validate_params(self._init_params, locals(), caller="Cascade")
        classifier, static = getattr(classifier, "head_", classifier), getattr(static, "head_", static)  # fitted
        stages: list[Stage] = [RulesStage(rules)] if rules is not None else []  # TaskClassifiers serve their head
        if static is not None:
            stages.append(HeadStage(STATIC, static, static_threshold))
        stages.append(HeadStage(EMBEDDING, classifier, threshold))
        if llm is not None:
            stages.append(FewShotLLMStage(llm, classifier, few_shot_k))
        self._setup(stages, few_shot_k=few_shot_k, manifest=manifest, cache_size=cache_size, window=window)

    @classmethod
    def from_stages(
        cls,
        stages: Sequence[Stage],
        *,
        few_shot_k: int = 8,
        manifest: dict | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        window: tuple[int, int] | None = (HEAD_CHARS, TAIL_CHARS),
        priors: dict[str, float] | None = None,
        budget: EscalationBudget | None = None,
    ) -> Cascade:
        """A cascade of `stages`, run in the order given; `budget` caps escalation (see `with_budget`).

        `priors` (label → share, checked and normalised as `with_priors` does): the traffic's label mix. Every head
        stage is re-weighted to it from the training mix of `manifest` (`training_priors`; uniform without one),
        whatever weights it had, and each decision records it: `from_stages(stages, priors=p)` is
        `from_stages(stages).with_priors(p)`. None leaves the stages' weights as they are."""
        if budget is not None and not isinstance(budget, EscalationBudget):
            raise InvalidParameterError("budget", budget, "an EscalationBudget or None", caller="Cascade.from_stages")
        cascade = cls._assemble(
            stages, few_shot_k=few_shot_k, manifest=manifest, cache_size=cache_size, window=window, budget=budget
        )
        return cascade if priors is None else cascade.with_priors(priors)

    @classmethod
    def _assemble(
        cls,
        stages: Sequence[Stage],
        *,
        few_shot_k: int,
        manifest: dict | None,
        cache_size: int,
        window: tuple[int, int] | None,
        priors: dict[str, float] | None = None,
        budget: EscalationBudget | None = None,
    ) -> Cascade:
        """A cascade of `stages` as given, stamped with `priors` (already checked, and the head stages already
        re-weighted to them)."""
        cascade = cls.__new__(cls)
        cascade._setup(list(stages), few_shot_k=few_shot_k, manifest=manifest, cache_size=cache_size, window=window)
        cascade.priors = priors
        cascade.budget = budget
        return cascade

    def _setup(
        self,
        stages: list[Stage],
        *,
        few_shot_k: int,
        manifest: dict | None,
        cache_size: int,
        window: tuple[int, int] | None,
    ) -> None:
        names = [s.name for s in stages]
        if len(set(names)) != len(names) or not all(isinstance(s, Stage) for s in stages):
            raise ValueError(f"stages must be Stage objects with distinct names, got {names}")
        guessing = [s for s in stages if s.guesses]
        if not guessing:
            raise ValueError("a cascade needs a stage that always names a label (a head)")
        for stage in stages:
            if not 0.0 <= stage.threshold <= 1.0 + 1e-6:
                key = "threshold" if stage.name == EMBEDDING else f"{stage.name}_threshold"
                raise ValueError(f"{key} must be in [0, 1], got {stage.threshold}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise InvalidParameterError("cache_size", cache_size, "an int >= 0", caller="Cascade")
        if window is not None and (
            not isinstance(window, Sequence)
            or isinstance(window, str)
            or len(window) != 2
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in window)
            or window[0] + window[1] == 0
        ):
            raise InvalidParameterError(
                "window", window, "None or (head, tail) characters, ints >= 0, not both 0", caller="Cascade"
            )
        self._fallback = guessing[-1]
        for stage in stages:
            if stage.labels is not None and stage.labels != self._fallback.labels:
                raise ValueError(
                    f"the {stage.name} stage's labels {stage.labels} differ from the "
                    f"{self._fallback.name} stage's {self._fallback.labels}"
                )
        for stage in stages:
            if isinstance(stage, RulesStage) and self._fallback.labels is not None:
                foreign = {
                    r.name: r.label for r in stage.rules.rules if r.enabled and r.label not in self._fallback.labels
                }
                if foreign:
                    raise ValueError(
                        f"keyword rules name labels the {self._fallback.name} stage does not have: {foreign} "
                        f"(labels: {list(self._fallback.labels)}); switch them off or train with those labels"
                    )
        self.stages = tuple(stages)
        self.few_shot_k = few_shot_k
        self.manifest = manifest or {}
        self.cache_size = cache_size
        self.window = None if window is None else (window[0], window[1])
        self.priors: dict[str, float] | None = None
        self.budget: EscalationBudget | None = None
        self._cache: OrderedDict[bytes, tuple[bytes, Decision]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._hits = self._misses = 0

    # -- the stages, by name ------------------------------------------------------------------------------------
    def stage(self, name: str) -> Stage | None:
        """The stage called `name`, if the cascade has one."""
        return next((s for s in self.stages if s.name == name), None)

    @property
    def labels(self) -> list[str]:
        labels = self._fallback.labels
        assert labels is not None, "a stage that always names a label has its labels"
        return list(labels)

    @property
    def classifier(self) -> LinearHead:
        """The MiniLM head (stage "embedding")."""
        head = self._head(EMBEDDING)
        if head is None:
            raise LookupError(f"this cascade has no {EMBEDDING} stage")
        return head

    @property
    def static(self) -> LinearHead | None:
        """The static-embedding head, or None."""
        return self._head(STATIC)

    @property
    def threshold(self) -> float:
        stage = self.stage(EMBEDDING)
        if stage is None:
            raise LookupError(f"this cascade has no {EMBEDDING} stage")
        return stage.threshold

    @property
    def static_threshold(self) -> float | None:
        stage = self.stage(STATIC)
        return stage.threshold if stage is not None else None

    @property
    def fallback_label(self) -> str | None:
        """The label of out-of-scope queries (None: no scope stage, every query gets one of `labels`)."""
        stage = self._stage_as(SCOPE, ScopeStage)
        return stage.fallback_label if stage is not None else None

    @property
    def rules(self) -> KeywordRules | None:
        stage = self._stage_as(RulesStage.name, RulesStage)
        return stage.rules if stage is not None else None

    @property
    def llm(self) -> LLMStage | None:
        stage = self._stage_as(LLM, FewShotLLMStage)
        return stage.llm if stage is not None else None

    def _head(self, name: str) -> LinearHead | None:
        stage = self._stage_as(name, HeadStage)
        return stage.head if stage is not None else None

    def _stage_as(self, name: str, kind: type[_S]) -> _S | None:
        """The stage called `name`, None if the cascade has none; TypeError if it is not a `kind`."""
        stage = self.stage(name)
        if stage is None or isinstance(stage, kind):
            return stage
        raise TypeError(f"the {name} stage is a {type(stage).__name__}, not a {kind.__name__}")

    _load_params: dict[str, list[Constraint]] = {
        "path": [None, str, PathLike],
        "threshold": [None, THRESHOLD],
        "static": [bool],
        "static_threshold": [None, THRESHOLD],
        "cache_size": [COUNT],
        "fallback_label": [None, str],
    }

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        llm: LLMStage | None = None,
        threshold: float | None = None,
        static: bool = True,
        static_threshold: float | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        window: tuple[int, int] | None = (HEAD_CHARS, TAIL_CHARS),
        priors: dict[str, float] | None = None,
        fallback_label: str | None = None,
    ) -> Cascade:
        """Load a trained cascade (the shipped one when `path` is None); stage 3 only if `llm` is given.

        `threshold` and `static_threshold` override the trained ones. `static=False` skips the model's static
        stage (if it has one), so every query past the rules is read by MiniLM. `priors`: see `with_priors`.
        `fallback_label` adds the scope stage after the rules: a query farther from the training examples than
        the model's trained scope threshold gets this label (`classifier.serving.scope`); every query past the rules is
        then read by MiniLM.
        """
        validate_params(cls._load_params, locals(), caller="Cascade.load")
        from ..model_files.load import load_model

        model = load_model(path, skip=() if static else (STATIC,))
        context = LoadContext(
            model,
            llm=llm,
            thresholds={EMBEDDING: threshold, STATIC: static_threshold},
            fallback_label=fallback_label,
        )
        stages: list[Stage] = []
        for entry in model.manifest.cascade.stages:  # every kind is registered: `load_model` checked
            kind = REGISTRY[entry.kind]
            files = {name: model.blobs[name] for name in entry.files}
            spec = StageManifest(entry.name, entry.kind, dict(entry.config), files)
            try:
                stage = kind.from_manifest(spec, replace(context, files=files))
            except ConfigError as exc:  # a stored stage's own settings: the model directory is at fault
                raise ModelFileError(f"stage {entry.name!r}: {exc}", path=str(model.directory)) from None
            if stage is not None:
                stages.append(stage)
        if fallback_label is not None and not any(s.name == SCOPE for s in stages):
            raise InvalidParameterError(
                "fallback_label",
                fallback_label,
                f"None: {model.directory} has no scope stage (retrain it with this version)",
            )
        manifest = model.manifest.model_dump(mode="json")
        try:
            k = next((FewShotLLMStage.k_of(e.config) for e in model.manifest.cascade.stages if e.name == LLM), 8)
            cascade = cls.from_stages(stages, few_shot_k=k, manifest=manifest, cache_size=cache_size, window=window)
        except ValueError as exc:
            if isinstance(exc, TaskRouterError):  # the caller's own arguments (window, cache_size)
                raise
            raise ModelFileError(f"inconsistent model: {exc}", path=str(model.directory)) from None
        return cascade if priors is None else cascade.with_priors(priors)

    def with_llm(self, llm: LLMStage | None) -> Cascade:
        """The same cascade with another stage 3 (or none), and an empty cache of the same size."""
        stages = [s for s in self.stages if s.name != LLM]
        if llm is not None:
            stages.append(FewShotLLMStage(llm, self.classifier, self.few_shot_k))
        return self._with(stages, self.priors)

    def with_budget(self, budget: EscalationBudget | None) -> Cascade:
        """The same cascade escalating under `budget` (None: the threshold alone decides), with an empty cache.
        The budget is shared, not copied: `with_llm` and `with_priors` keep the same one, and its window.

        >>> capped = Cascade.load().with_budget(EscalationBudget(0.10))   # doctest: +SKIP
        """
        if budget is not None and not isinstance(budget, EscalationBudget):
            raise InvalidParameterError("budget", budget, "an EscalationBudget or None", caller="Cascade.with_budget")
        cascade = self._with(self.stages, self.priors)
        cascade.budget = budget
        return cascade

    @property
    def training_priors(self) -> dict[str, float]:
        """The label mix the heads were trained on (the manifest's label counts; uniform when it has none)."""
        counts = (self.manifest.get("training") or {}).get("label_counts") or {}
        if set(counts) != set(self.labels) or not all(isinstance(v, int) and v > 0 for v in counts.values()):
            return {label: 1 / len(self.labels) for label in self.labels}
        total = sum(counts.values())
        return {label: counts[label] / total for label in self.labels}

    def with_priors(self, priors: dict[str, float] | None) -> Cascade:
        """The same cascade for traffic with label mix `priors` (label → share, normalised here; None: the
        training mix): each head's probabilities are re-weighted by π / π_train, thresholds unchanged."""
        if priors is None:
            weights = None
        else:
            priors = check_priors(priors, self.labels)
            weights = weights_for(priors, self.training_priors, self.labels)
        stages = [s.with_prior_weights(weights) if isinstance(s, HeadStage) else s for s in self.stages]
        return self._with(stages, priors)

    def _with(self, stages: Sequence[Stage], priors: dict[str, float] | None) -> Cascade:
        return Cascade._assemble(
            stages,
            few_shot_k=self.few_shot_k,
            manifest=self.manifest,
            cache_size=self.cache_size,
            window=self.window,
            priors=priors,
            budget=self.budget,
        )

    def cache_info(self) -> CacheInfo:
        """Hits, misses, maximum and current size of the decision cache."""
        with self._cache_lock:
            return CacheInfo(self._hits, self._misses, self.cache_size, len(self._cache))

    def cache_clear(self) -> None:
        """Forget every cached decision and reset the counters."""
        with self._cache_lock:
            self._cache.clear()
            self._hits = self._misses = 0

    def read(self, text: str) -> str:
        """The part of `text` the stages read: its window (`classifier.window`), or all of it with window=None."""
        return text if self.window is None else window(text, *self.window)

    def head_proba(self, name: str, texts: Sequence[str]) -> np.ndarray:
        """Head stage `name`'s probabilities for `texts` as serving makes them: over each text's window, re-weighted
        to the cascade's priors; columns in `labels` order. For every text, also those an earlier stage decides."""
        stage = self.stage(name)
        if not isinstance(stage, HeadStage):
            raise LookupError(f"this cascade has no head stage {name!r}")
        batch = _batch(texts, caller="Cascade.head_proba")
        checked = [self.read(check_query(t, field=f"texts[{i}]")) for i, t in enumerate(batch)]
        return stage.proba(BatchContext(checked, progress=stage.head.progress))

    def classify(self, text: str) -> Decision:
        """Decide one query."""
        return self._decide([check_query(text, field="query")])[0]

    def classify_batch(self, texts: Sequence[str]) -> list[Decision]:
        """Decide many queries (a list, a tuple or another ordered iterable of strings; not one string, a mapping
        or a set); each stage reads every query that reaches it in one batch."""
        batch = _batch(texts, caller="Cascade.classify_batch")
        return self._decide([check_query(t, field=f"texts[{i}]") for i, t in enumerate(batch)])

    def _decide(self, texts: list[str]) -> list[Decision]:
        """`classify_batch` for texts already checked."""
        if self.window is not None:
            head, tail = self.window
            texts = [window(t, head, tail) for t in texts]
        decided: dict[int, Decision] = {}
        hits: set[int] = set()
        keys = {i: (_cache_key(t), _exact_digest(t)) for i, t in enumerate(texts)} if self.cache_size else {}
        if keys:  # an exact repeat of a query decided past the rules: they would not fire this time either
            hits |= self._lookup(keys, range(len(texts)), decided, exact=True)
        pending = [i for i in range(len(texts)) if i not in decided]
        trails: dict[int, list[StageResult]] = {i: [] for i in pending}
        guesses: dict[int, StageResult] = {}
        mix = tuple(self.priors.items()) if self.priors is not None else None
        ctx = BatchContext([texts[i] for i in pending])
        computed: list[int] | None = None
        budgeted = self.budget is None
        for stage in self.stages:
            if stage.cached and computed is None and pending:
                if keys:  # a case or whitespace variant of a query decided past the rules
                    hits |= self._lookup(keys, pending, decided, exact=False)
                    pending, ctx = _rest(pending, ctx, decided)
                    with self._cache_lock:
                        self._misses += len(pending)
                computed = list(pending)
            if not pending:
                break
            results = stage.classify_batch(ctx.texts, ctx)
            if len(results) != len(pending):
                raise RuntimeError(f"stage {stage.name} gave {len(results)} results for {len(pending)} queries")
            for i, r in zip(pending, results, strict=True):
                trails[i].append(r)
                if stage.accepts(r):
                    if r.label is None:
                        raise RuntimeError(f"stage {stage.name} accepted a result without a label")
                    decided[i] = Decision(r.label, stage.name, r.confidence, i in guesses, tuple(trails[i]), mix)
                elif stage is self._fallback:
                    guesses[i] = r
            if stage is self._fallback and not budgeted:
                self._spend_budget(pending, decided, hits, guesses, trails, mix)
                budgeted = True
            pending, ctx = _rest(pending, ctx, decided)
        if not budgeted and self.budget is not None:  # no query reached the head: each counts as a sure one
            self.budget.admit([1.0] * sum(1 for i in decided if i not in hits))
        for i in pending:  # no stage answered: the fallback's guess stands, escalated
            g = guesses[i]
            if g.label is None:
                raise RuntimeError(f"stage {g.stage} guessed no label")
            decided[i] = Decision(g.label, g.stage, g.confidence, True, tuple(trails[i]), mix)
        if keys and computed:
            self._remember((keys[i], decided[i]) for i in computed)
        return [decided[i] for i in range(len(texts))]

    def _spend_budget(
        self,
        reached: list[int],
        decided: dict[int, Decision],
        hits: set[int],
        guesses: dict[int, StageResult],
        trails: dict[int, list[StageResult]],
        mix: tuple[tuple[str, float], ...] | None,
    ) -> None:
        """Let the budget rank this batch's queries: those answered before the head count as sure ones; a query
        below the head's threshold that it holds back keeps the head's guess, decided there, not escalated."""
        assert self.budget is not None
        at_head = set(reached)
        sure = [i for i in decided if i not in hits and i not in at_head]
        confidences = [1.0] * len(sure) + [_confidence(trails[i][-1]) for i in reached]
        wants = [False] * len(sure) + [i in guesses for i in reached]
        admitted = self.budget.admit(confidences, wants)[len(sure) :]
        for i, escalates in zip(reached, admitted, strict=True):
            if i in guesses and not escalates:
                g = replace(guesses.pop(i), note=BUDGET_SPENT)
                trails[i][-1] = g
                if g.label is None:
                    raise RuntimeError(f"stage {g.stage} guessed no label")
                decided[i] = Decision(g.label, g.stage, g.confidence, False, tuple(trails[i]), mix)

    def _lookup(
        self, keys: dict[int, tuple[bytes, bytes]], indices, decided: dict[int, Decision], *, exact: bool
    ) -> set[int]:
        """Fill `decided` from the cache for `indices` (returned: those it filled); with `exact`, only where the
        entry's text was the same."""
        found: set[int] = set()
        with self._cache_lock:
            for i in indices:
                key, digest = keys[i]
                entry = self._cache.get(key)
                if entry is not None and (not exact or entry[0] == digest):
                    self._cache.move_to_end(key)
                    decided[i] = entry[1]
                    found.add(i)
                    self._hits += 1
        return found

    def _remember(self, items) -> None:
        with self._cache_lock:
            for (key, digest), decision in items:
                if decision.trail and decision.trail[-1].stage != decision.stage:
                    continue  # a later stage (the LLM) was asked and gave no usable answer: ask again next time
                if decision.held_back:
                    continue  # the budget may let it escalate next time
                self._cache[key] = (digest, decision)
                self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)


def _batch(texts: object, *, caller: str) -> Iterable[object]:
    """`texts` if it is a batch of queries: ordered and iterable, and not one string (or bytes), a mapping (whose
    keys would be classified, not its values) or a set (whose order is not the caller's)."""
    if isinstance(texts, str | bytes | bytearray):
        expected = "a sequence of query strings, not one string (use classify() for one query)"
    elif isinstance(texts, Mapping | Set):
        expected = "a sequence of query strings (a list or a tuple), not a mapping or a set"
    elif not isinstance(texts, Iterable):
        expected = "a sequence of query strings (a list or a tuple)"
    else:
        return texts
    raise InvalidParameterError("texts", texts, expected, caller=caller)


def _confidence(result: StageResult) -> float:
    return 1.0 if result.confidence is None else float(result.confidence)


def _rest(pending: list[int], ctx: BatchContext, decided: dict[int, Decision]) -> tuple[list[int], BatchContext]:
    """The queries still undecided, and their part of the batch's context."""
    keep = [j for j, i in enumerate(pending) if i not in decided]
    if len(keep) == len(pending):
        return pending, ctx
    return [pending[j] for j in keep], ctx.take(keep)


def _exact_digest(text: str) -> bytes:
    """A fixed-size fingerprint of `text` exactly as given."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


_SEPARATORS = re.compile(r"[^\S\x0b\x0c\x1c-\x1f\x85]+")
"""A run of the characters every stage reads as a word break: Python's whitespace (what the n-grams split on) less
\\v, \\f, \\x1c-\\x1f and \\x85, which the tokenizers' BertNormalizer deletes as control characters ("what\\x1fis"
is one word to MiniLM and to the static table, two to the n-grams)."""
_NOT_SEPARATORS = re.compile(r"[\x0b\x0c\x1c-\x1f\x85]")
"""The characters `str.split()` splits on that are not word breaks: a text without any is split as `str.split()`
splits it. (tests/model/test_cache.py checks the key against the tokenizers and the n-grams.)"""


def _cache_text(text: str) -> str:
    """`text` as every cached stage reads it, so that two texts with the same form get the same decision: each run of
    `_SEPARATORS` one space, none at either end, lower-cased one character at a time as the tokenizers do, except Σ.
    `str.lower` makes a word-final Σ ς, where the tokenizers make it σ (and the n-grams ς); kept as Σ, it is
    lowered by each stage itself, from the same context as in `text`."""
    if _NOT_SEPARATORS.search(text):
        read = _SEPARATORS.sub(" ", text).strip(" ")
    else:  # the same, about four times as fast
        read = " ".join(text.split())
    return "Σ".join(part.lower() for part in read.split("Σ")) if "Σ" in read else read.lower()


def _cache_key(text: str) -> bytes:
    """A fixed-size key for `text` as the stages read it (`_cache_text`; the query itself is not kept)."""
    return hashlib.blake2b(_cache_text(text).encode("utf-8", "surrogatepass"), digest_size=16).digest()
