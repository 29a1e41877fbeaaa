"""The cascade: keyword rules → embedding classifier → (optional) LLM classifier. No I/O of its own."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from .data import check_query
from .estimator import TaskClassifier
from .keywords import KeywordRules
from .results import Decision, StageResult

__all__ = ["Cascade", "LLMStage"]


class LLMStage(Protocol):
    """Stage 3: label one query given its nearest labeled examples (label None = abstain)."""

    def classify(self, text: str, examples: Sequence[tuple[str, str]] = ()) -> StageResult: ...


class Cascade:
    """Classify queries cheapest-first; a stage answers or passes the query on.

    >>> cascade = Cascade.load()                       # the shipped model, stage 3 off
    >>> cascade.classify("derivative of x^3").label    # doctest: +SKIP
    'math'
    """

    def __init__(self, classifier: TaskClassifier, rules: KeywordRules | None, threshold: float, *,
                 llm: LLMStage | None = None, few_shot_k: int = 8, manifest: dict | None = None) -> None:
        if not 0.0 <= threshold <= 1.0 + 1e-6:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.classifier = classifier
        self.rules = rules
        self.threshold = threshold
        self.llm = llm
        self.few_shot_k = few_shot_k
        self.manifest = manifest or {}

    @property
    def labels(self) -> list[str]:
        return self.classifier.classes_.tolist()

    @classmethod
    def load(cls, path: str | Path | None = None, *, llm: LLMStage | None = None,
             threshold: float | None = None) -> Cascade:
        """Load a trained cascade (the shipped one when `path` is None); stage 3 only if `llm` is given."""
        from .persistence import load_model

        clf, manifest = load_model(path)
        section = manifest.get("cascade") or {}
        rules = KeywordRules.from_list(section["rules"]) if section.get("rules") else None
        chosen = float(section.get("threshold", 0.0)) if threshold is None else threshold
        return cls(clf, rules, chosen, llm=llm, manifest=manifest)

    def with_llm(self, llm: LLMStage | None) -> Cascade:
        """The same cascade with another stage 3 (or none)."""
        return Cascade(self.classifier, self.rules, self.threshold, llm=llm, few_shot_k=self.few_shot_k,
                       manifest=self.manifest)

    def classify(self, text: str) -> Decision:
        """Decide one query."""
        return self.classify_batch([text])[0]

    def classify_batch(self, texts: Sequence[str]) -> list[Decision]:
        """Decide many queries; stage 2 embeds every query that reaches it in one batch."""
        if isinstance(texts, str):
            raise TypeError("classify_batch takes a sequence of strings; use classify() for one query")
        texts = [check_query(t, field=f"texts[{i}]") for i, t in enumerate(texts)]
        trails: list[list[StageResult]] = [[] for _ in texts]
        decided: dict[int, Decision] = {}
        for i, text in enumerate(texts):
            if self.rules is not None:
                r = self.rules.classify(text)
                trails[i].append(r)
                if r.label is not None:
                    decided[i] = Decision(r.label, r.stage, r.confidence, False, tuple(trails[i]))
        rest = [i for i in range(len(texts)) if i not in decided]
        if rest:
            start = time.perf_counter()
            batch = [texts[i] for i in rest]
            emb = self.classifier.embed(batch)
            proba = self.classifier.predict_proba(batch, embeddings=emb)
            per_query = (time.perf_counter() - start) / len(rest)
            for j, i in enumerate(rest):
                best = int(proba[j].argmax())
                label, conf = self.labels[best], float(proba[j, best])
                confident = conf >= self.threshold
                s2 = StageResult("embedding", label, conf, per_query, "confident" if confident else "below threshold")
                trails[i].append(s2)
                if confident:
                    decided[i] = Decision(label, "embedding", conf, False, tuple(trails[i]))
                    continue
                if self.llm is not None:
                    s3 = self.llm.classify(texts[i], self.classifier.nearest_examples(emb[j], self.few_shot_k))
                    trails[i].append(s3)
                    if s3.label is not None and s3.label in self.labels:
                        decided[i] = Decision(s3.label, "llm", s3.confidence, True, tuple(trails[i]))
                        continue
                decided[i] = Decision(label, "embedding", conf, True, tuple(trails[i]))
        return [decided[i] for i in range(len(texts))]
