"""The decision cache in front of the shipped model: a second pass over the same queries is all hits."""

import json
import sys

import pytest

from classifier.serving import assets
from classifier.serving.cascade import Cascade, _cache_text
from classifier.serving.features import char_wb_ngrams
from tests.conftest import DATA


def test_second_pass_over_bundled_queries_is_served_from_the_cache():
    rows = [json.loads(line) for line in DATA.open(encoding="utf-8")]
    texts = [r["text"] for r in rows[::20]][:200]
    cascade = Cascade.load(cache_size=1_000)
    first = cascade.classify_batch(texts)
    reached = sum(d.stage != "heuristic" for d in first)
    assert cascade.cache_info().misses == reached and cascade.cache_info().currsize <= reached

    # Case and whitespace variants; the exact-text rules may still fire on a few of them.
    second = [cascade.classify(t.lower() if i % 2 else f"  {t}\n") for i, t in enumerate(texts)]
    same_object = sum(b is a for a, b in zip(first, second, strict=True) if a.stage != "heuristic")
    assert same_object >= 0.95 * reached and cascade.cache_info().hits >= same_object
    assert sum(a.label == b.label for a, b in zip(first, second, strict=True)) >= 0.99 * len(texts)


@pytest.fixture(scope="module")
def readers():
    """What the cached stages read of a text: MiniLM's token ids, the static table's and the char n-grams."""
    from tokenizers import Tokenizer

    minilm = Tokenizer.from_str(assets.read(assets.TOKENIZER).decode("utf-8"))
    static = Tokenizer.from_str(assets.read_static_table()[1])
    ngram_range = Cascade.load().classifier.lexical_.ngram_range

    def read(text):
        return (
            minilm.encode(text).ids,
            static.encode(text, add_special_tokens=False).ids,
            sorted(char_wb_ngrams(text, ngram_range)),
        )

    return read


PY_WHITESPACE = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]


@pytest.mark.parametrize("context", ["what{}is 17", "{}What is{}{}17{}", "A{}Σ b", "ΟΔΟΣ{}x", "ΑΣ{}", "x{}ΣΣ"])
def test_the_key_is_the_text_as_every_cached_stage_reads_it(readers, context):
    """Two texts with one key get one decision, so each stage must read a text as it reads its key form: checked
    for every character Python calls whitespace and for capital sigmas in and at the end of a word."""
    for ch in PY_WHITESPACE:
        text = context.format(*[ch] * context.count("{}"))
        assert readers(_cache_text(text)) == readers(text), (ascii(ch), text)


def test_a_control_character_between_words_is_not_served_the_spaced_querys_decision():
    """Before: "what\x1fis 17 times 23" (one word to the tokenizers) hit the entry of "what is 17 times 23"."""
    fresh, cascade = Cascade.load(cache_size=0), Cascade.load()
    spaced, joined = "what is 17 times 23", "what\x1fis\x1f17\x1ftimes\x1f23"
    cascade.classify(spaced)
    got, expected = cascade.classify(joined), fresh.classify(joined)
    assert cascade.cache_info().hits == 0
    assert (got.label, got.stage, got.confidence) == (expected.label, expected.stage, expected.confidence)
