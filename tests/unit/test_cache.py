"""The cascade's decision cache, around a stage 2 that counts what it is asked (no model, no I/O)."""

import threading

import numpy as np
import pytest

from classifier.results import StageResult
from classifier.serving.cascade import CacheInfo, Cascade
from classifier.serving.encoder import CachedEmbedder
from classifier.serving.keywords import KeywordRules, Rule

LABELS = ("code", "default", "math")


class ZeroEmbedder:
    id, dim, backend = "zero", 4, "none"

    def encode(self, texts, *, progress=None):
        return np.zeros((len(texts), self.dim), dtype=np.float32)


class CountingStage2:
    """Stands in for a served head: 'sum' → math, 'loop' → code, anything else → default at 0.6."""

    classes_ = np.array(LABELS)
    progress = None

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.lock = threading.Lock()
        self.embedders = [ZeroEmbedder()]

    def proba(self, ctx):
        with self.lock:
            self.seen.extend(ctx.texts)
        rows = []
        for t in ctx.texts:
            low = t.lower()
            best = 2 if "sum" in low else 0 if "loop" in low else 1
            rows.append([0.9 if i == best else 0.05 for i in range(3)] if best != 1 else [0.2, 0.6, 0.2])
        return np.array(rows)

    def nearest_examples(self, embedding, k=8):
        return []


class CountingLLM:
    """A stage 3 that answers 'default' for known queries and abstains otherwise; counts its calls."""

    def __init__(self, known=()):
        self.known = set(known)
        self.calls = 0

    def classify(self, text, examples=()):
        self.calls += 1
        label = "default" if text in self.known else None
        return StageResult("llm", label, None, 0.0, "counting" if label else "counting: no usable answer")


def make(cache_size=10_000, *, rules=None, llm=None, threshold=0.7):
    stage2 = CountingStage2()
    return Cascade(stage2, rules, threshold, llm=llm, cache_size=cache_size), stage2


def test_a_repeated_query_is_served_from_the_cache():
    cascade, stage2 = make()
    first = cascade.classify("What is the sum of 2 and 3?")
    again = cascade.classify("  what is THE sum\nof 2 and   3?  ")  # same after collapsing whitespace, lower-cased
    assert again is first and first.label == "math"
    assert stage2.seen == ["What is the sum of 2 and 3?"]
    assert cascade.cache_info() == CacheInfo(hits=1, misses=1, maxsize=10_000, currsize=1)


def test_size_zero_switches_the_cache_off():
    cascade, stage2 = make(cache_size=0)
    first, again = cascade.classify("sum these"), cascade.classify("sum these")
    assert again is not first and again.label == first.label
    assert stage2.seen == ["sum these", "sum these"]
    assert cascade.cache_info() == CacheInfo(0, 0, 0, 0)


def test_the_bound_holds_and_the_least_recently_used_goes_first():
    cascade, stage2 = make(cache_size=3)
    for q in ("q a", "q b", "q c"):
        cascade.classify(q)
    cascade.classify("q a")  # a hit: "q a" is now the most recent
    cascade.classify("q d")  # evicts "q b"
    assert cascade.cache_info().currsize == 3
    stage2.seen.clear()
    cascade.classify("q a")
    cascade.classify("q b")
    assert stage2.seen == ["q b"]
    for i in range(50):
        cascade.classify(f"another query {i}")
    assert cascade.cache_info().currsize == 3


def test_batches_mix_hits_and_misses_in_order():
    cascade, stage2 = make()
    cascade.classify("a loop in C")
    out = cascade.classify_batch(["sum it", "A LOOP in c", "hello", "sum it"])
    assert [d.label for d in out] == ["math", "code", "default", "math"]
    assert stage2.seen == ["a loop in C", "sum it", "hello", "sum it"]
    assert cascade.cache_info().hits == 1


def test_rules_run_on_the_exact_text_before_the_cache():
    rules = KeywordRules([Rule("upper_select", "code", r"\bSELECT\b")])
    cascade, stage2 = make(rules=rules)
    lower = cascade.classify("select the best one")  # no rule: stage 2, cached
    upper = cascade.classify("SELECT the best one")  # same cache key, but the case-sensitive rule answers first
    assert (lower.stage, upper.stage) == ("embedding", "heuristic")
    assert cascade.cache_info() == CacheInfo(hits=0, misses=1, maxsize=10_000, currsize=1)
    assert cascade.classify("Select the best one") is lower


def test_stage_three_answers_are_cached_and_abstentions_are_asked_again():
    llm = CountingLLM(known={"hello there"})
    cascade, _ = make(llm=llm)
    answered = [cascade.classify("hello there") for _ in range(3)]
    assert answered[0].stage == "llm" and all(d is answered[0] for d in answered) and llm.calls == 1
    unsure = [cascade.classify("no idea") for _ in range(3)]
    assert all(d.stage == "embedding" and d.escalated for d in unsure) and llm.calls == 4
    assert cascade.cache_info().currsize == 1


def test_with_llm_starts_an_empty_cache_of_the_same_size():
    cascade, _ = make(cache_size=7)
    cascade.classify("hello")
    other = cascade.with_llm(CountingLLM())
    assert other.cache_info() == CacheInfo(0, 0, 7, 0)
    cascade.cache_clear()
    assert cascade.cache_info() == CacheInfo(0, 0, 7, 0)


def test_threads_share_the_cache_safely():
    cascade, stage2 = make(cache_size=16)
    queries = [f"query number {i % 24}" for i in range(400)]
    errors = []

    def work(offset):
        try:
            for q in queries[offset:] + queries[:offset]:
                assert cascade.classify(q).label == "default"
        except Exception as exc:  # collected, so a failure in a thread fails the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k * 37,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    info = cascade.cache_info()
    assert not errors
    assert info.hits + info.misses == 8 * 400 and info.currsize <= 16
    assert len(stage2.seen) == info.misses


@pytest.mark.parametrize("size", [-1, 1.5, "10", True], ids=["negative", "float", "str", "bool"])
def test_cache_size_is_validated(size):
    with pytest.raises(ValueError, match="'cache_size' parameter of Cascade must be an int >= 0"):
        make(cache_size=size)


class CountingRules(KeywordRules):
    """Keyword rules that count the texts they are asked about."""

    def __init__(self, rules):
        super().__init__(rules)
        self.asked: list[str] = []

    def classify(self, text):
        self.asked.append(text)
        return super().classify(text)


def test_an_exact_repeat_skips_the_rules_and_a_variant_does_not():
    rules = CountingRules([Rule("upper_select", "code", r"\bSELECT\b")])
    cascade, stage2 = make(rules=rules)
    first = cascade.classify("select the best one")
    assert cascade.classify("select the best one") is first
    assert cascade.classify("Select the best one") is first
    assert rules.asked == ["select the best one", "Select the best one"]  # the repeat never reached stage 1
    assert stage2.seen == ["select the best one"]
    # A rule hit is not cached: it is cheaper to run the rules again than to keep a second entry per query.
    assert [cascade.classify("SELECT x").stage for _ in range(2)] == ["heuristic", "heuristic"]
    assert cascade.cache_info() == CacheInfo(hits=2, misses=1, maxsize=10_000, currsize=1)


# Python's str.split() breaks words at these, the tokenizers' BertNormalizer deletes them: "what\x1fis" is one word.
DELETED_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x1f\x85"


def test_spellings_the_stages_read_differently_are_not_one_entry():
    """Case folding would make "Straße" and "strasse" one key; stage 2 lower-cases, so it reads two queries.

    Before: the key collapsed every character `str.split()` splits on, so "what\x1fis 17" (one word "whatis" to
    MiniLM and the static table) was served the decision of "what is 17"; and it lower-cased with `str.lower`,
    which makes a word-final Σ ς where the tokenizers make it σ, so "ΟΔΟΣ" was served the decision of "οδος"."""
    cascade, stage2 = make()
    cascade.classify("Grüße aus der Straße")
    cascade.classify("grüsse aus der strasse")
    assert stage2.seen == ["Grüße aus der Straße", "grüsse aus der strasse"]
    assert cascade.cache_info().hits == 0
    base = "what is the sum of 17 and 23"
    variants = [base.replace(" ", ch) for ch in DELETED_BREAKS] + [f"what{ch} is the sum" for ch in DELETED_BREAKS]
    for text in [base, "what is the sum", *variants, "ΟΔΟΣ sum", "οδος sum"]:
        cascade.classify(text)
    assert stage2.seen[2:] == [base, "what is the sum", *variants, "ΟΔΟΣ sum", "οδος sum"]
    assert cascade.cache_info().hits == 0


@pytest.mark.parametrize("space", [" \t ", "\n", "\r\n", "\xa0", "\u2003", "\u3000", "\u2028", "\u202f"], ids=ascii)
def test_word_breaks_every_stage_reads_as_one_are_one_entry(space):
    cascade, stage2 = make()
    first = cascade.classify("what is the sum of 17 and 23")
    assert cascade.classify(f"{space}WHAT{space}is the SUM of 17 and{space}23{space}") is first
    assert cascade.classify("Σ sum of ΟΔΟΣ") is cascade.classify("Σ  SUM of ΟΔΟΣ")  # Σ itself is kept
    assert len(stage2.seen) == 2


class LengthEmbedder(CachedEmbedder):
    """A CachedEmbedder whose vector is the text's length; it records what it was asked to encode."""

    id, dim, backend = "length", 4, "none"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.encoded: list[str] = []

    def _encode_batch(self, texts):
        self.encoded.extend(texts)
        return np.array([[len(t), 0, 0, 0] for t in texts], dtype=np.float32)


def test_the_vector_cache_keeps_long_texts_by_digest():
    """Before: a long text was its own key, so a cache of 50,000 pasted documents held gigabytes of keys."""
    emb = LengthEmbedder(cache_size=10)
    long_a, long_b, short = "ж" * 99_000, "ж" * 98_999 + "x", "sum 2 and 2"
    first = emb.encode([long_a, short, long_a, long_b], progress=False)
    again = emb.encode([long_b, long_a, short], progress=False)
    assert first[:, 0].tolist() == [99_000, 11, 99_000, 99_000] and again[:, 0].tolist() == [99_000, 99_000, 11]
    assert len(emb.encoded) == 3  # each distinct text encoded once; the second call came from the cache
    assert sum(len(k) for k in emb._cache) < 100  # two 16-byte digests and the short text itself
