"""The decision cache in front of the shipped model: a second pass over the same queries is all hits."""

import json

from classifier.serving.cascade import Cascade
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
