"""data/build/loso.py: its on-disk vector cache and its per-source scores."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("loso", ROOT / "data" / "build" / "loso.py")
loso = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = loso
_spec.loader.exec_module(loso)


class CountingEmbedder:
    def __init__(self):
        self.seen: list[str] = []

    def encode(self, texts, *, progress=None):
        self.seen.extend(texts)
        return np.array([[len(t), t.count("a")] for t in texts], dtype=np.float32)


def test_vectors_are_cached_on_disk_and_reused(tmp_path):
    base = CountingEmbedder()
    emb = loso.DiskCachedEmbedder(base, tmp_path)
    first = emb.encode(["abc", "banana", "abc"])
    assert sorted(base.seen) == ["abc", "banana"] and emb.computed == 2
    np.testing.assert_array_equal(first[0], first[2])
    again = loso.DiskCachedEmbedder(CountingEmbedder(), tmp_path)  # a new process reads the file
    np.testing.assert_array_equal(again.encode(["banana", "abc"]), first[[1, 0]])
    assert again.computed == 0 and again.base.seen == []


def test_scores_use_the_held_out_labels_only():
    acc, f1 = loso.scores(["code"] * 4, np.array(["code", "code", "code", "default"]))
    assert acc == 0.75
    assert abs(f1 - 2 * 0.75 / 1.75) < 1e-9  # F1 of `code`: precision 1, recall 0.75
