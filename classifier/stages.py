"""The cascade's stages behind one protocol, and the registry that maps a stage name to its class.

A stage reads a batch of queries and the batch's shared `BatchContext`, and gives one `StageResult` each. It
answers a query when `accepts(result)`: a label, at or above the stage's threshold. Otherwise the query passes
on, and the result stays in the decision's trail (a head's best guess is kept there, with "below threshold").

Adding a stage: a `Stage` subclass (a module of its own, or here) and its name in `results.STAGES` and
`REGISTRY`; a head stage is built by `Cascade.load` from the model's manifest (`heads[*].stage`).
"""

from __future__ import annotations

import abc
import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from .errors import InvalidParameterError
from .head import BatchContext, LinearHead
from .keywords import KeywordRules
from .priors import adjust
from .results import EMBEDDING, HEURISTIC, LLM, SCOPE, STAGES, STATIC, StageResult
from .scope import Scope

__all__ = ["REGISTRY", "FewShotLLMStage", "HeadStage", "LLMStage", "RulesStage", "ScopeStage", "Stage"]


class LLMStage(Protocol):
    """Stage 3: label one query given its nearest labeled examples (label None = abstain)."""

    def classify(self, text: str, examples: Sequence[tuple[str, str]] = ()) -> StageResult: ...


class Stage(abc.ABC):
    """One stage of the cascade; subclasses implement `classify_batch`."""

    name: str
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


class RulesStage(Stage):
    """Keyword rules: case- and line-sensitive, so they run before the decision cache is asked."""

    name = HEURISTIC
    cached = False

    def __init__(self, rules: KeywordRules) -> None:
        self.rules = rules

    def classify_batch(self, texts: Sequence[str], ctx: BatchContext) -> list[StageResult]:
        return [self.rules.classify(t) for t in texts]


class ScopeStage(Stage):
    """Sends a query far from every training example of `head` to `fallback_label` (see `classifier.scope`);
    the rest pass on. Its trail entry's confidence is the query's similarity to its nearest examples."""

    name = SCOPE

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


class HeadStage(Stage):
    """A linear head over embeddings and n-grams; answers at or above `threshold`, else passes its guess on.

    `prior_weights` (π / π_train per label, `classifier.priors`) re-weight its probabilities for traffic whose
    label mix is not the training one."""

    guesses = True
    labels: list[str]

    def __init__(
        self, name: str, head: LinearHead, threshold: float, *, prior_weights: np.ndarray | None = None
    ) -> None:
        self.name, self.head, self.threshold = name, head, threshold
        self.labels = head.classes_.tolist()
        self.prior_weights = prior_weights

    def with_prior_weights(self, weights: np.ndarray | None) -> HeadStage:
        """The same head and threshold, its probabilities re-weighted by `weights` (None: as trained)."""
        return HeadStage(self.name, self.head, self.threshold, prior_weights=weights)

    def classify_batch(self, texts: Sequence[str], ctx: BatchContext) -> list[StageResult]:
        start = time.perf_counter()
        proba = self.head.proba(ctx)
        if self.prior_weights is not None:
            proba = adjust(proba, self.prior_weights)
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
    labels: list[str]

    def __init__(self, llm: LLMStage, head: LinearHead, k: int = 8) -> None:
        self.llm, self.head, self.k = llm, head, k
        self.labels = head.classes_.tolist()

    def classify_batch(self, texts: Sequence[str], ctx: BatchContext) -> list[StageResult]:
        vectors = ctx.vectors(self.head.embedders[0], progress=self.head.progress)
        return [self.llm.classify(t, self.head.nearest_examples(vectors[j], self.k)) for j, t in enumerate(texts)]

    def accepts(self, result: StageResult) -> bool:
        return result.label is not None and result.label in self.labels


REGISTRY: dict[str, type[Stage]] = {
    HEURISTIC: RulesStage,
    SCOPE: ScopeStage,
    STATIC: HeadStage,
    EMBEDDING: HeadStage,
    LLM: FewShotLLMStage,
}
"""Stage name → class, in cascade order."""
assert tuple(REGISTRY) == STAGES, "every stage name in results.STAGES has one class here"
