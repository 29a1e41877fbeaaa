"""The static stage: model2vec's vectors, a verified token table, and a cascade that answers only when sure."""

import io
import json
import logging
import shutil

import numpy as np
import pytest

from classifier import ModelFileError
from classifier.cascade import Cascade
from classifier.static_embedding import FILE, StaticMiniLMEmbedder, build, cache_dir
from tests.conftest import DATA

EDGES = ["a", "😀 emoji only", "ÉCOLE naïve ß", "日本語のテキスト", "[UNK] [CLS] literal specials", "x " * 700]


@pytest.fixture(scope="module")
def queries():
    rows = [json.loads(line) for line in DATA.open(encoding="utf-8")]
    return [r["text"] for r in rows[::13]][:300]


def test_vectors_match_model2vec(queries):
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    arrays = np.load(io.BytesIO(build()), allow_pickle=False)
    tokenizer = Tokenizer.from_str(arrays["tokenizer"].tobytes().decode())
    tokenizer.no_padding()  # the distilled tokenizer keeps MiniLM's fixed padding, which would average in [PAD]
    tokenizer.no_truncation()
    reference = StaticModel(vectors=arrays["embedding"].astype(np.float32), normalize=True, tokenizer=tokenizer)
    texts = queries + EDGES
    expected = reference.encode(texts, use_multiprocessing=False)
    got = StaticMiniLMEmbedder().encode(texts)
    cos = np.sum(got * expected, axis=1) / np.maximum(np.linalg.norm(expected, axis=1), 1e-12)
    assert got.shape == (len(texts), 384) and cos.min() > 0.9999


def test_shipped_cascade_uses_the_static_stage_only_when_confident(queries):
    cascade = Cascade.load(cache_size=0)
    assert cascade.static is not None and 0.5 < cascade.static_threshold <= 1
    decisions = cascade.classify_batch(queries)
    static = [d for d in decisions if d.stage == "static"]
    minilm = [d for d in decisions if d.stage == "embedding"]
    assert static and minilm
    for d in static:
        assert d.confidence >= cascade.static_threshold and not d.escalated
        assert [s.stage for s in d.trail] == ["heuristic", "static"] and d.trail[-1].note == "confident"
    for d in minilm:
        s = d.stage_result("static")
        assert s.confidence < cascade.static_threshold and s.note == "below threshold"
    # Without the static stage every one of those queries is read by MiniLM.
    plain = Cascade.load(static=False, cache_size=0)
    assert plain.static is None
    alone = plain.classify_batch(queries)
    assert {d.stage for d in alone} <= {"heuristic", "embedding"}
    # MiniLM reuses the static stage's n-gram rows for what it is passed: same confidences as on its own.
    for with_static, without in zip(decisions, alone, strict=True):
        if with_static.stage == "embedding":
            assert with_static.confidence == pytest.approx(without.confidence, abs=1e-9)


def test_the_static_head_is_refused_when_its_manifest_section_is_foreign(tmp_path):
    from classifier.persistence import DEFAULT_MODEL_DIR

    d = tmp_path / "m"
    shutil.copytree(DEFAULT_MODEL_DIR, d)
    m = json.loads((d / "manifest.json").read_text())
    m["static_head"]["embedder"]["id"] = "someone/else"
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelFileError, match="static head trained with embedder"):
        Cascade.load(d)
    assert Cascade.load(d, static=False).static is None  # the rest of the model is still usable


def test_without_a_table_or_the_means_to_build_one_the_stage_is_off(monkeypatch, caplog):
    import classifier.static_embedding as static_embedding

    monkeypatch.setattr(static_embedding, "available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="taskrouter.embedding"):
        cascade = Cascade.load()
    assert cascade.static is None and "static stage off" in caplog.text
    assert cascade.classify("tell me a fun fact about otters").stage in {"embedding", "heuristic"}


def test_a_tampered_table_is_never_loaded(tmp_path, monkeypatch):
    build()
    source = cache_dir()
    monkeypatch.setenv("TASKROUTER_CACHE", str(tmp_path))
    target = cache_dir()
    target.mkdir(parents=True)
    for name in (FILE, FILE + ".json"):
        shutil.copy2(source / name, target / name)
    assert StaticMiniLMEmbedder(allow_build=False).encode(["fine"]).shape == (1, 384)
    data = bytearray((target / FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (target / FILE).write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256 does not match its record.*python -m classifier.static_embedding"):
        StaticMiniLMEmbedder(allow_build=False).encode(["fine"])


def test_a_static_head_with_other_labels_is_refused():
    import copy

    cascade = Cascade.load()
    other = copy.copy(cascade.static)
    other.classes_ = cascade.static.classes_[::-1]
    with pytest.raises(ValueError, match="static head's labels"):
        Cascade(cascade.classifier, cascade.rules, cascade.threshold, static=other)


def test_the_static_threshold_can_be_overridden(queries):
    default = Cascade.load(cache_size=0)
    lower = Cascade.load(static_threshold=0.6, cache_size=0)
    count = [sum(d.stage == "static" for d in c.classify_batch(queries)) for c in (default, lower)]
    assert lower.static_threshold == 0.6 and count[1] > count[0]


def test_a_table_that_cannot_be_loaded_turns_the_stage_off(monkeypatch, caplog):
    def broken(self):
        raise ModelFileError("sha256 does not match its record (file modified)", path="table")

    monkeypatch.setattr(StaticMiniLMEmbedder, "load", broken)
    with caplog.at_level(logging.WARNING, logger="taskrouter.embedding"):
        cascade = Cascade.load()
    assert cascade.static is None and "static stage off: table: sha256" in caplog.text
    assert cascade.classify("tell me a fun fact about otters").label in cascade.labels


def test_saving_without_the_static_head_removes_an_earlier_one(small_model_dir, tmp_path):
    from classifier.estimator import TaskClassifier

    d = tmp_path / "m"
    shutil.copytree(small_model_dir, d)
    assert (d / "static.npz").is_file()
    TaskClassifier.load(d).save(d)  # main head only, into the same directory
    assert not (d / "static.npz").exists()
    assert Cascade.load(d).static is None  # loads: no unlisted file left behind


def test_lexical_rows_that_do_not_fit_are_refused():
    head = Cascade.load().classifier
    rows = head.lexical_.transform_rows(["one text", "another"])
    with pytest.raises(ValueError, match="do not fit 1 texts"):
        head.predict_proba(["one text"], lexical=rows)


def test_a_table_other_than_the_trained_one_turns_the_stage_off(tmp_path, caplog):
    import hashlib

    from classifier.persistence import DEFAULT_MODEL_DIR

    d = tmp_path / "m"
    shutil.copytree(DEFAULT_MODEL_DIR, d)
    with np.load(d / "static.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["probes"] = np.roll(arrays["probes"], 1, axis=0)  # as if trained on a table that embeds differently
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (d / "static.npz").write_bytes(buf.getvalue())
    m = json.loads((d / "manifest.json").read_text())
    m["files"]["static.npz"] = {"sha256": hashlib.sha256(buf.getvalue()).hexdigest(), "bytes": len(buf.getvalue())}
    (d / "manifest.json").write_text(json.dumps(m))
    with caplog.at_level(logging.WARNING, logger="taskrouter.embedding"):
        cascade = Cascade.load(d)
    assert cascade.static is None and "not the one the head was trained on" in caplog.text
