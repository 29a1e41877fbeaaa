"""The cascade's stages behind one protocol, and the registry that maps a stage kind to its class.

A stage reads a batch of queries and the batch's shared `BatchContext`, and gives one `StageResult` each. It
answers a query when `accepts(result)`: a label, at or above the stage's threshold. Otherwise the query passes
on, and the result stays in the decision's trail (a head's best guess is kept there, with "below threshold").

A model's manifest lists its stages in cascade order (`cascade.stages`: name, kind, config, files); that list is
the source of truth. `Cascade.load` is one loop over it: `REGISTRY[kind].from_manifest(entry, context)` builds
each stage (or leaves it out, e.g. the LLM stage when no LLM is given), and `to_manifest()` writes a stage's entry
and its own files when a model is saved.

Adding a stage is one module: a `Stage` subclass with a class attribute `kind` (it registers itself when the
module is imported), `to_manifest` and `from_manifest`; and a trainer (`StageTrainer`: `fit(texts, labels) ->
Stage`) that `train_cascade(stages=[...])` runs before the heads. Import the module before loading a model that
lists its kind.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from ..errors import InvalidParameterError, ModelFileError
from ..results import EMBEDDING, HEURISTIC, LLM, SCOPE, StageResult
from .head import BatchContext, LinearHead
from .keywords import KeywordRules
from .priors import adjust
from .scope import Scope

if TYPE_CHECKING:
    from ..model_files.loaded import LoadedModel

__all__ = [
    "REGISTRY",
    "FewShotLLMStage",
    "HeadStage",
    "LLMStage",
    "LoadContext",
    "RulesStage",
    "ScopeStage",
    "Stage",
    "StageManifest",
    "StageTrainer",
]


class LLMStage(Protocol):
    """Stage 3: label one query given its nearest labeled examples (label None = abstain)."""

    def classify(self, text: str, examples: Sequence[tuple[str, str]] = ()) -> StageResult: ...


@dataclass(frozen=True)
class StageManifest:
    """A stage's entry in a manifest's `cascade.stages`, and the bytes of the files it keeps (name → bytes)."""

    name: str
    kind: str
    config: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadContext:
    """What `from_manifest` reads: the verified model, its stage entry's files (name → verified bytes), and the
    load's options (an LLM for stage 3, threshold overrides by stage name, the fallback label)."""

    model: LoadedModel
    files: Mapping[str, bytes] = field(default_factory=dict)
    llm: LLMStage | None = None
    thresholds: Mapping[str, float | None] = field(default_factory=dict)
    fallback_label: str | None = None


class Stage(abc.ABC):
    """One stage of the cascade; subclasses implement `classify_batch`.

    A subclass that sets `kind` is registered under it and can be saved in and loaded from a model
    (`to_manifest`, `from_manifest`)."""

    name: str
    kind: ClassVar[str | None] = None
    """The registry key a manifest names the class by (None: not saveable, e.g. a stage built in code)."""
    threshold: float = 0.0
    cached = True
    """Its decisions may be cached under the query's folded form (False: it reads the exact text)."""
    guesses = False
    """It always names a label; the last such stage's guess stands when no stage answers (escalation)."""
    labels: list[str] | None = None

    @abc.abstractmethod
    def classify_batch(self, texts: Sequence[str], ctx: BatchContext) -> list[StageResult]:
        """One result per text; `ctx` holds what earlier stages made for the same texts."""

    def accepts(self, result: StageResult) -> bool:
        """Whether this stage answers with `result`: a label, with a confidence at or above the threshold."""
        return result.label is not None and (result.confidence is None or result.confidence >= self.threshold)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind is None:
            return
        known = REGISTRY.get(kind)
        same = known is not None and (known.__module__, known.__qualname__) == (cls.__module__, cls.__qualname__)
        if known is not None and not same:  # the same class again (a module reloaded) takes its place
            raise TypeError(f"stage kind {kind!r} is taken by {known.__module__}.{known.__qualname__}")
        REGISTRY[kind] = cls

    def to_manifest(self) -> StageManifest:
        """This stage's manifest entry and files (what a trained model keeps of it)."""
        if self.kind is None:
            raise TypeError(f"{type(self).__name__} has no `kind`: it cannot be saved in a model")
        return StageManifest(self.name, self.kind)

    @classmethod
    def from_manifest(cls, entry: StageManifest, context: LoadContext) -> Stage | None:
        """The stage a manifest entry describes (None: left out of this load, e.g. switched off)."""
        raise NotImplementedError(f"{cls.__name__} cannot be loaded from a model")


class StageTrainer(Protocol):
    """Fits a stage from labeled rows; `train_cascade(stages=[...])` runs it and puts the stage after the rules."""

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> Stage: ...


REGISTRY: dict[str, type[Stage]] = {}
"""Stage kind → class; every `Stage` subclass with a `kind` adds itself when its module is imported."""


class RulesStage(Stage):
    """Keyword rules: case- and line-sensitive, so they run before the decision cache is asked."""

    name = HEURISTIC
    kind = "rules"
    cached = False

    def __init__(self, rules: KeywordRules) -> None:
        self.rules = rules

    @classmethod
    def from_manifest(cls, entry: StageManifest, context: LoadContext) -> RulesStage | None:
        rules = context.model.manifest.cascade.rules  # the manifest's `cascade.rules`, measured when trained
        return cls(KeywordRules.from_list(rules)) if rules else None

    def classify_batch(self, texts: Sequence[str], ctx: BatchContext) -> list[StageResult]:
        return [self.rules.classify(t) for t in texts]


class ScopeStage(Stage):
    """Sends a query far from every training example of `head` to `fallback_label` (see `classifier.serving.scope`);
    the rest pass on. Its trail entry's confidence is the query's similarity to its nearest examples."""

    name = SCOPE
    kind = "scope"

    def __init__(self, head: LinearHead, scope: Scope, fallback_label: str) -> None:
        if not isinstance(fallback_label, str) or not fallback_label.strip():
            raise InvalidParameterError("fallback_label", fallback_label, "a non-empty string")
        self.head, self.scope, self.fallback_label = head, scope, fallback_label
        self.threshold = 0.0  # answering is not a confidence at or above a threshold: see `accepts`
        self._examples = head.example_embeddings_.astype(np.float32)

    def classify_batch(self, texts: Sequence[str], ctx: BatchContext) -> list[StageResult]:
        start = time.perf_counter()
        vectors = ctx.vectors(self.head.embedders[0], progress=self.head.progress)
        sims = self.scope.similarity(vectors[:, : self._examples.shape[1]], self._examples)
        per_query = (time.perf_counter() - start) / max(1, len(texts))
        out = []
        for s in sims.tolist():
            if s < self.scope.threshold:
                note = f"out of scope: similarity {s:.3f} to the nearest examples is below {self.scope.threshold:.3f}"
                out.append(StageResult(self.name, self.fallback_label, s, per_query, note))
            else:
                out.append(StageResult(self.name, None, s, per_query, "in scope"))
        return out

    def accepts(self, result: StageResult) -> bool:
        return result.label is not None

    @staticmethod
    def entry(head: str = EMBEDDING) -> StageManifest:
        """The manifest entry of a trained scope check over `head`'s examples (served with a fallback label)."""
        return StageManifest(SCOPE, ScopeStage.kind or "", {"head": head})

    def to_manifest(self) -> StageManifest:
        return self.entry()

    @classmethod
    def from_manifest(cls, entry: StageManifest, context: LoadContext) -> ScopeStage | None:
        """Served only when a fallback label is given; the check itself is the manifest's `cascade.scope`."""
        if context.fallback_label is None:
            return None
        model = context.model
        trained = model.manifest.cascade.scope
        if trained is None:
            raise InvalidParameterError(
                "fallback_label",
                context.fallback_label,
                f"None: the model in {model.directory} has no scope threshold (retrain it with this version)",
            )
        head = _head_of(entry, context)
        return cls(head, Scope.from_dict(trained.model_dump()), context.fallback_label)


class HeadStage(Stage):
    """A linear head over embeddings and n-grams; answers at or above `threshold`, else passes its guess on.

    `prior_weights` (π / π_train per label, `classifier.serving.priors`) re-weight its probabilities for traffic whose
    label mix is not the training one."""

    kind = "head"
    guesses = True
    labels: list[str]

    def __init__(
        self, name: str, head: LinearHead, threshold: float, *, prior_weights: np.ndarray | None = None
    ) -> None:
        self.name, self.head, self.threshold = name, head, threshold
        self.labels = head.classes_.tolist()
        self.prior_weights = prior_weights

    @classmethod
    def from_manifest(cls, entry: StageManifest, context: LoadContext) -> HeadStage | None:
        """The head of the manifest's `heads[*]` with this stage's name (None: the load skipped it)."""
        model = context.model
        if entry.name not in model.heads:
            if model.manifest.head(entry.name) is None:
                raise ModelFileError(f"cascade.stages: no head for the {entry.name} stage", path=str(model.directory))
            return None
        chosen = context.thresholds.get(entry.name)
        return cls(entry.name, model.heads[entry.name], model.thresholds[entry.name] if chosen is None else chosen)

    def with_prior_weights(self, weights: np.ndarray | None) -> HeadStage:
        """The same head and threshold, its probabilities re-weighted by `weights` (None: as trained)."""
        return HeadStage(self.name, self.head, self.threshold, prior_weights=weights)

    def proba(self, ctx: BatchContext) -> np.ndarray:
        """The head's probabilities for the context's texts, re-weighted by `prior_weights` as served."""
        proba = self.head.proba(ctx)
        return proba if self.prior_weights is None else adjust(proba, self.prior_weights)

    def classify_batch(self, texts: Sequence[str], ctx: BatchContext) -> list[StageResult]:
        start = time.perf_counter()
        proba = self.proba(ctx)
        per_query = (time.perf_counter() - start) / max(1, len(texts))
        out = []
        for row in proba:
            best = int(row.argmax())
            conf = float(row[best])
            note = "confident" if conf >= self.threshold else "below threshold"
            out.append(StageResult(self.name, self.labels[best], conf, per_query, note))
        return out


class FewShotLLMStage(Stage):
    """An LLM classifier prompted with the nearest training examples of `head` (MiniLM's vectors)."""

    name = LLM
    kind = "few_shot_llm"
    labels: list[str]

    def __init__(self, llm: LLMStage, head: LinearHead, k: int = 8) -> None:
        if not callable(getattr(llm, "classify", None)):
            raise InvalidParameterError("llm", llm, "a stage 3 with a classify(text, examples) method, or None")
        self.llm, self.head, self.k = llm, head, k
        self.labels = head.classes_.tolist()

    @staticmethod
    def entry(head: str = EMBEDDING, k: int = 8) -> StageManifest:
        """The manifest entry of stage 3 over `head`'s `k` nearest examples (served when an LLM is given)."""
        return StageManifest(LLM, FewShotLLMStage.kind or "", {"head": head, "k": k})

    def to_manifest(self) -> StageManifest:
        return self.entry(k=self.k)

    @classmethod
    def from_manifest(cls, entry: StageManifest, context: LoadContext) -> FewShotLLMStage | None:
        if context.llm is None:
            return None
        return cls(context.llm, _head_of(entry, context), cls.k_of(entry.config, entry.name))

    @staticmethod
    def k_of(config: Mapping[str, Any], name: str = LLM) -> int:
        """How many examples a stage entry's prompts show (its `config.k`, default 8)."""
        k = config.get("k", 8)
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ModelFileError(f"cascade.stages[{name}].config.k must be an int >= 0", path="manifest.json")
        return k

    def classify_batch(self, texts: Sequence[str], ctx: BatchContext) -> list[StageResult]:
        vectors = ctx.vectors(self.head.embedders[0], progress=self.head.progress)
        return [self._ask(t, self.head.nearest_examples(vectors[j], self.k)) for j, t in enumerate(texts)]

    def _ask(self, text: str, examples: Sequence[tuple[str, str]]) -> StageResult:
        """The LLM's answer. One that raises, or answers with something other than a StageResult, abstains with a
        note naming the fault's type (never its message, which may quote the query), so the query keeps its head's
        guess, escalated, and the rest of the batch is decided."""
        start = time.perf_counter()
        try:
            result = self.llm.classify(text, examples)
        except Exception as exc:  # noqa: BLE001 - anyone's stage 3: its fault must not lose the batch
            return StageResult(self.name, None, None, time.perf_counter() - start, f"error:{type(exc).__name__}")
        if not isinstance(result, StageResult):
            note = f"error:answered a {type(result).__name__}, not a StageResult"
            return StageResult(self.name, None, None, time.perf_counter() - start, note)
        return result

    def accepts(self, result: StageResult) -> bool:
        return result.label is not None and result.label in self.labels


def _head_of(entry: StageManifest, context: LoadContext) -> LinearHead:
    """The loaded head an entry's `config.head` names (default: the MiniLM head), whose training examples the stage
    reads (the scope check measures a query against them, stage 3 shows the nearest): a head saved without them
    (the static one) is a ModelFileError here, not a RuntimeError at the first query that needs them."""
    name = entry.config.get("head", EMBEDDING)
    head = context.model.heads.get(name) if isinstance(name, str) else None
    if head is None:
        raise ModelFileError(
            f"cascade.stages[{entry.name}].config.head: {name!r} is not a loaded head",
            path=str(context.model.directory),
        )
    if head.examples is None:
        raise ModelFileError(
            f"cascade.stages[{entry.name}].config.head: the {name!r} head was saved without the training examples "
            f"the {entry.name} stage reads",
            path=str(context.model.directory),
        )
    return head
