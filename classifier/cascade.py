"""The cascade: keyword rules → static classifier → MiniLM classifier → (optional) LLM classifier.

No I/O of its own."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from .data import check_query
from .features import SparseRows
from .head import LinearHead
from .keywords import KeywordRules
from .results import Decision, StageResult

__all__ = ["DEFAULT_CACHE_SIZE", "Cascade", "CacheInfo", "LLMStage"]

DEFAULT_CACHE_SIZE = 10_000
"""Decisions a cascade remembers by default (about 1 kB each)."""


class LLMStage(Protocol):
    """Stage 3: label one query given its nearest labeled examples (label None = abstain)."""

    def classify(self, text: str, examples: Sequence[tuple[str, str]] = ()) -> StageResult: ...


class CacheInfo(NamedTuple):
    """Counters of a cascade's decision cache, as `functools.lru_cache` reports them."""

    hits: int
    misses: int
    maxsize: int
    currsize: int


class Cascade:
    """Classify queries cheapest-first; a stage answers or passes the query on.

    Stages: keyword rules ("heuristic"); when the model has one, a static-embedding head ("static": a token
    table distilled from MiniLM, well under a millisecond per query) that answers only at or above
    `static_threshold`;
    the MiniLM head ("embedding"), which answers at or above `threshold` and, when trained with
    `static_features`, reads the static vectors too (made once, by the static stage); and the LLM ("llm") for
    the rest.
    Escalation means passing a query on from the MiniLM head.

    Decisions past the keyword rules are remembered in a bounded, thread-safe LRU cache (`cache_size`
    entries; 0 switches it off), keyed on the query with whitespace collapsed and case folded — stage 2 reads
    queries that way already (lower-cased tokens, n-grams of whitespace-split words). The rules are case- and
    line-sensitive, so a variant runs them on its exact text before the cache is asked; an exact repeat of
    the text that made the entry skips them as well (they did not fire on it), so it costs two hashes and a
    dict lookup. A hit returns the stored `Decision` object itself, trail latencies included. Stage-3 answers
    are cached too (that is where the time and money go); a decision where stage 3 was asked and gave no
    usable answer is not, so the query is asked again next time.
    The cache assumes the stages are not changed in place: `with_llm` returns a cascade with a cache of its
    own, and `cache_clear()` empties it.

    >>> cascade = Cascade.load()                       # the shipped model, stage 3 off
    >>> cascade.classify("derivative of x^3").label    # doctest: +SKIP
    'math'
    """

    def __init__(self, classifier: LinearHead, rules: KeywordRules | None, threshold: float, *,
                 static: LinearHead | None = None, static_threshold: float = 1.0, llm: LLMStage | None = None,
                 few_shot_k: int = 8, manifest: dict | None = None, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        for name, value in (("threshold", threshold), ("static_threshold", static_threshold)):
            if not 0.0 <= value <= 1.0 + 1e-6:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"The 'cache_size' parameter of Cascade must be an int >= 0. "
                             f"Got {cache_size!r} instead.")
        if static is not None and list(static.classes_) != list(classifier.classes_):
            raise ValueError(f"the static head's labels {list(static.classes_)} differ from the classifier's "
                             f"{list(classifier.classes_)}")
        self.classifier = classifier
        self._share_static = False  # hand the static stage's vectors to a MiniLM head that reads them
        if static is not None and getattr(classifier, "static_features", False):
            from .static_embedding import STATIC_ID

            self._share_static = getattr(static.embedder, "id", None) == STATIC_ID
        self.rules = rules
        self.threshold = threshold
        self.static = static
        self.static_threshold = static_threshold
        self.llm = llm
        self.few_shot_k = few_shot_k
        self.manifest = manifest or {}
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, tuple[bytes, Decision]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._hits = self._misses = 0

    @property
    def labels(self) -> list[str]:
        return self.classifier.classes_.tolist()

    @classmethod
    def load(cls, path: str | Path | None = None, *, llm: LLMStage | None = None,
             threshold: float | None = None, static: bool = True, static_threshold: float | None = None,
             cache_size: int = DEFAULT_CACHE_SIZE) -> Cascade:
        """Load a trained cascade (the shipped one when `path` is None); stage 3 only if `llm` is given.

        `threshold` and `static_threshold` override the trained ones. `static=False` skips the model's static
        stage (if it has one), so every query past the rules is read by MiniLM.
        """
        from .persistence import load_model, load_static_head

        clf, manifest = load_model(path, serving=True)
        section = manifest.get("cascade") or {}
        rules = KeywordRules.from_list(section["rules"]) if section.get("rules") else None
        chosen = float(section.get("threshold", 0.0)) if threshold is None else threshold
        fast = load_static_head(path, manifest, clf) if static else None
        fast_threshold = (float((section.get("static") or {}).get("threshold", 1.0)) if static_threshold is None
                          else static_threshold)
        return cls(clf, rules, chosen, static=fast, static_threshold=fast_threshold, llm=llm, manifest=manifest,
                   cache_size=cache_size)

    def with_llm(self, llm: LLMStage | None) -> Cascade:
        """The same cascade with another stage 3 (or none), and an empty cache of the same size."""
        return Cascade(self.classifier, self.rules, self.threshold, static=self.static,
                       static_threshold=self.static_threshold, llm=llm, few_shot_k=self.few_shot_k,
                       manifest=self.manifest, cache_size=self.cache_size)

    def cache_info(self) -> CacheInfo:
        """Hits, misses, maximum and current size of the decision cache."""
        with self._cache_lock:
            return CacheInfo(self._hits, self._misses, self.cache_size, len(self._cache))

    def cache_clear(self) -> None:
        """Forget every cached decision and reset the counters."""
        with self._cache_lock:
            self._cache.clear()
            self._hits = self._misses = 0

    def classify(self, text: str) -> Decision:
        """Decide one query."""
        return self.classify_batch([text])[0]

    def classify_batch(self, texts: Sequence[str]) -> list[Decision]:
        """Decide many queries; stage 2 embeds every query that reaches it in one batch."""
        if isinstance(texts, str):
            raise TypeError("classify_batch takes a sequence of strings; use classify() for one query")
        texts = [check_query(t, field=f"texts[{i}]") for i, t in enumerate(texts)]
        decided: dict[int, Decision] = {}
        keys = {i: (_cache_key(t), _exact_digest(t)) for i, t in enumerate(texts)} if self.cache_size else {}
        if keys:  # an exact repeat of a query decided past the rules: they would not fire this time either
            self._lookup(keys, range(len(texts)), decided, exact=True)
        trails: dict[int, list[StageResult]] = {}
        for i, text in enumerate(texts):
            if i in decided:
                continue
            trails[i] = []
            if self.rules is not None:
                r = self.rules.classify(text)
                trails[i].append(r)
                if r.label is not None:
                    decided[i] = Decision(r.label, r.stage, r.confidence, False, tuple(trails[i]))
        rest = [i for i in range(len(texts)) if i not in decided]
        if keys and rest:  # a case or whitespace variant of a query decided past the rules
            self._lookup(keys, rest, decided, exact=False)
            rest = [i for i in rest if i not in decided]
            with self._cache_lock:
                self._misses += len(rest)
        computed = rest
        lexical = static_vectors = None
        if rest and self.static is not None:
            rest, lexical, static_vectors = self._static_stage(texts, rest, trails, decided)
        if rest:
            start = time.perf_counter()
            batch = [texts[i] for i in rest]
            emb = (self.classifier.embed(batch, static=static_vectors) if self._share_static and static_vectors
                   is not None else self.classifier.embed(batch))
            proba = self.classifier.predict_proba(batch, embeddings=emb, lexical=lexical)
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
        if keys:
            self._remember((keys[i], decided[i]) for i in computed)
        return [decided[i] for i in range(len(texts))]

    def _static_stage(self, texts: list[str], rest: list[int], trails: dict[int, list[StageResult]],
                      decided: dict[int, Decision]) -> tuple[list[int], SparseRows | None, np.ndarray | None]:
        """Decide the queries the static head is confident about; return the others, for MiniLM, with their
        n-gram rows when both heads share them and their static vectors (which MiniLM's head may read too)."""
        start = time.perf_counter()
        batch = [texts[i] for i in rest]
        lexical = self.static.lexical_.transform_rows(batch)
        vectors = self.static.embed(batch)
        proba = self.static.predict_proba(batch, embeddings=vectors, lexical=lexical)
        per_query = (time.perf_counter() - start) / len(rest)
        passed, rows = [], []
        for j, i in enumerate(rest):
            best = int(proba[j].argmax())
            label, conf = self.labels[best], float(proba[j, best])
            confident = conf >= self.static_threshold
            note = "confident" if confident else "below threshold"
            trails[i].append(StageResult("static", label, conf, per_query, note))
            if confident:
                decided[i] = Decision(label, "static", conf, False, tuple(trails[i]))
            else:
                passed.append(i)
                rows.append(j)
        shared = self.static.lexical_ is self.classifier.lexical_
        return passed, (lexical.take(rows) if shared and passed else None), (vectors[rows] if passed else None)

    def _lookup(self, keys: dict[int, tuple[bytes, bytes]], indices, decided: dict[int, Decision], *,
                exact: bool) -> None:
        """Fill `decided` from the cache for `indices`; with `exact`, only where the entry's text was the same."""
        with self._cache_lock:
            for i in indices:
                key, digest = keys[i]
                entry = self._cache.get(key)
                if entry is not None and (not exact or entry[0] == digest):
                    self._cache.move_to_end(key)
                    decided[i] = entry[1]
                    self._hits += 1

    def _remember(self, items) -> None:
        with self._cache_lock:
            for (key, digest), decision in items:
                if decision.stage != "llm" and decision.stage_result("llm") is not None:
                    continue  # stage 3 was asked and gave no usable answer: ask again next time
                self._cache[key] = (digest, decision)
                self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)


def _exact_digest(text: str) -> bytes:
    """A fixed-size fingerprint of `text` exactly as given."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _cache_key(text: str) -> bytes:
    """A fixed-size key for `text` with whitespace collapsed and case folded (the query itself is not kept)."""
    return hashlib.blake2b(" ".join(text.split()).casefold().encode("utf-8", "surrogatepass"),
                           digest_size=16).digest()
