"""The static stage: model2vec's vectors, a verified token table, and a cascade that answers only when sure."""

import io
import json
import logging
import pickle
import shutil

import numpy as np
import pytest

from classifier import ModelFileError
from classifier.building.static_distill import build
from classifier.serving.cascade import Cascade
from classifier.serving.static_embedding import STATIC_ID, StaticMiniLMEmbedder
from tests.conftest import DATA

EDGES = ["a", "😀 emoji only", "ÉCOLE naïve ß", "日本語のテキスト", "[UNK] [CLS] literal specials", "x " * 700]


@pytest.fixture(scope="module")
def queries():
    rows = [json.loads(line) for line in DATA.open(encoding="utf-8")]
    return [r["text"] for r in rows[::13]][:300]


def test_vectors_match_model2vec(queries):
    """The shipped int8 table gives model2vec's vectors of the distilled float16 table, to int8 rounding."""
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
    assert got.shape == (len(texts), 384) and cos.min() > 0.999


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
    from classifier.model_files import DEFAULT_MODEL_DIR

    d = tmp_path / "m"
    shutil.copytree(DEFAULT_MODEL_DIR, d)
    m = json.loads((d / "manifest.json").read_text())
    m["embedders"][1]["id"] = "someone/else"
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelFileError, match="static head trained with embedder"):
        Cascade.load(d)
    with pytest.raises(ModelFileError, match="static head trained with embedder"):
        Cascade.load(d, static=False)  # its MiniLM head reads the static vectors too: nothing half-loads


def test_a_static_head_with_other_labels_is_refused():
    import copy

    cascade = Cascade.load()
    other = copy.copy(cascade.static)
    other.classes_ = cascade.static.classes_[::-1]
    with pytest.raises(ValueError, match="static stage's labels"):
        Cascade(cascade.classifier, cascade.rules, cascade.threshold, static=other)


def test_the_static_threshold_can_be_overridden(queries):
    default = Cascade.load(cache_size=0)
    lower = Cascade.load(static_threshold=0.6, cache_size=0)
    count = [sum(d.stage == "static" for d in c.classify_batch(queries)) for c in (default, lower)]
    assert lower.static_threshold == 0.6 and count[1] > count[0]


def test_saving_without_the_static_head_removes_an_earlier_one(small_model_dir, small_data, tmp_path):
    from classifier.training.estimator import TaskClassifier

    d = tmp_path / "m"
    shutil.copytree(small_model_dir, d)
    assert (d / "static.npz").is_file()
    with pytest.raises(ValueError, match="saved with its static head"):
        TaskClassifier.load(d).save(d)  # its head reads static vectors: their probes must be kept
    TaskClassifier(cv=0).fit(small_data.texts, small_data.labels).save(d)  # a plain head, into the same directory
    assert not (d / "static.npz").exists()
    assert Cascade.load(d).static is None  # loads: no unlisted file left behind


class Refuses:
    """Has the static embedder's id and backend, and fails if asked to encode: what a context keeps is reused."""

    id, backend, dim = STATIC_ID, "static", 384

    def encode(self, texts, *, progress=None):
        raise AssertionError("encoded again")


def test_the_minilm_head_reads_static_vectors_made_once(small_model_dir, small_data):
    from classifier.serving.head import BatchContext
    from classifier.training.train import train_cascade

    cascade = Cascade.load(small_model_dir, cache_size=0)
    head = cascade.classifier
    texts = list(small_data.texts[:5])
    ctx = BatchContext(texts)
    static = ctx.vectors(cascade.static.embedder)  # what the static stage asks for first
    joined = head.features(ctx)
    assert head.static_features and joined.shape == (5, 768)
    assert np.array_equal(joined[:, 384:], static) and ctx.vectors(Refuses()) is static
    assert np.allclose(joined, head.embed(texts))
    passed_on = ctx.take([3, 1])  # the queries the static stage passes on keep their vectors and n-gram rows
    assert np.array_equal(passed_on.vectors(Refuses()), static[[3, 1]])
    assert np.allclose(head.proba(passed_on), head.predict_proba([texts[3], texts[1]]))
    with pytest.raises(ValueError, match="do not fit 5 texts and this head's 768 embedding columns"):
        head.predict_proba(texts, embeddings=joined[:, :384])  # MiniLM's vectors alone: refused, not misread
    assert head.nearest_examples(joined[0], 1)[0][0] == texts[0]  # retrieval reads the MiniLM block
    with pytest.raises(ValueError, match="static_features needs static=True"):
        train_cascade(small_data, static=False, static_features=True)


def test_lexical_rows_that_do_not_fit_are_refused():
    head = Cascade.load().classifier
    rows = head.lexical_.transform_rows(["one text", "another"])
    with pytest.raises(ValueError, match="do not fit 1 texts"):
        head.predict_proba(["one text"], lexical=rows)


def _roll_probes(src, dst):
    """Copy model `src` to `dst` with its probe vectors shuffled: as if trained on a table that embeds otherwise."""
    import hashlib

    shutil.copytree(src, dst)
    with np.load(dst / "static.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["probes"] = np.roll(arrays["probes"], 1, axis=0)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (dst / "static.npz").write_bytes(buf.getvalue())
    m = json.loads((dst / "manifest.json").read_text())
    m["files"]["static.npz"] = {"sha256": hashlib.sha256(buf.getvalue()).hexdigest(), "bytes": len(buf.getvalue())}
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def test_a_table_other_than_the_trained_one(tmp_path, caplog, small_plain_model_dir):
    from classifier.model_files import DEFAULT_MODEL_DIR

    with pytest.raises(ModelFileError, match="not the one the head was trained on"):
        Cascade.load(_roll_probes(DEFAULT_MODEL_DIR, tmp_path / "shipped"))
    with caplog.at_level(logging.WARNING, logger="taskrouter.embedding"):
        cascade = Cascade.load(_roll_probes(small_plain_model_dir, tmp_path / "plain"))
    assert cascade.static is None and "not the one the head was trained on" in caplog.text


def test_an_estimator_with_static_features(small_data):
    from sklearn.base import clone

    from classifier.training.estimator import TaskClassifier

    clf = TaskClassifier(static_features=True, cv=0).fit(small_data.texts, small_data.labels)
    assert clf.coef_.shape[1] == 768 + clf.n_features and clf.example_embeddings_.shape[1] == 384
    assert clf.predict_proba(list(small_data.texts[:3])).shape == (3, 4)
    assert clone(clf).get_params()["static_features"] is True and not hasattr(clone(clf), "static_embedder_")
    again = pickle.loads(pickle.dumps(clf))  # the table is reloaded (and re-verified) on first use, not pickled
    assert again.static_embedder_._table is None
    assert np.allclose(again.predict_proba(list(small_data.texts[:3])), clf.predict_proba(list(small_data.texts[:3])))
    with pytest.raises(ValueError, match="'static_features' parameter"):
        TaskClassifier(static_features="yes").fit(small_data.texts, small_data.labels)


def _as_format_1(src, dst, *, static_features=None):
    """Copy plain model `src` to `dst` with its manifest written as format 1 was (one head, no list of heads;
    `static_features` absent, or set to the value given)."""
    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    static, main = m["heads"]
    params = dict(m["params"])
    params.pop("static_features")
    if static_features is not None:
        params["static_features"] = static_features
    old = {
        "format_version": 1,
        "kind": m["kind"],
        "labels": m["labels"],
        "embedder": m["embedders"][0],
        "params": params,
        "lexical": {"analyzer": "char_wb", "ngram_range": m["lexical"]["ngram_range"]},
        "calibration": main["calibration"],
        "versions": m["versions"],
        "cascade": {
            "threshold": main["threshold"],
            "target": main["target"],
            "curve": main["curve"],
            **m["cascade"],
            "static": {k: static[k] for k in ("threshold", "target", "curve")},
        },
        "static_head": {
            "embedder": m["embedders"][1],
            "lexical_weight": static["lexical_weight"],
            "calibration": static["calibration"],
        },
        "files": m["files"],
    }
    old["static_head"]["embedder"].pop("probes_file")
    (dst / "manifest.json").write_text(json.dumps(old))
    return dst


def test_models_saved_before_static_features_still_load(small_plain_model_dir, small_data, tmp_path):
    from classifier.training.estimator import TaskClassifier

    old = _as_format_1(small_plain_model_dir, tmp_path / "old")
    texts = list(small_data.texts[:5])
    assert TaskClassifier.load(old).static_features is False
    then, now = Cascade.load(old, cache_size=0), Cascade.load(small_plain_model_dir, cache_size=0)
    assert [(s.name, s.threshold) for s in then.stages] == [(s.name, s.threshold) for s in now.stages]
    assert np.allclose(then.classifier.predict_proba(texts), now.classifier.predict_proba(texts))
    assert np.allclose(then.static.predict_proba(texts), now.static.predict_proba(texts))
    with pytest.raises(ModelFileError, match="static_features must be true or false"):
        Cascade.load(_as_format_1(small_plain_model_dir, tmp_path / "str", static_features="false"))
    with pytest.raises(ModelFileError, match="static_features needs format_version 2"):
        Cascade.load(_as_format_1(small_plain_model_dir, tmp_path / "v1", static_features=True))


@pytest.mark.parametrize(
    "spoil",
    [lambda p: np.full_like(p, np.nan), lambda p: 3 * p, lambda p: p[:-1]],
    ids=["nan", "scaled", "one-short"],
)
def test_probe_vectors_that_are_not_units_are_refused(spoil):
    """The probe check is a cosine: NaN (never below the bar) or scaled probes (above it) must not pass."""
    from classifier.model_files.probes import probe_vectors, static_embedder
    from classifier.serving.encoder import ENCODERS

    enc = ENCODERS["tuned"]
    good = probe_vectors(enc.name)
    assert static_embedder(good, enc)[0] is not None
    embedder, why = static_embedder(spoil(good), enc)
    assert embedder is None and "unit vectors" in why


@pytest.mark.parametrize("fails_at", ["writing", "swapping"])
def test_a_save_that_fails_half_way_leaves_the_model_that_was_there(small_model_dir, small_data, tmp_path, fails_at):
    """The new model is written beside the old one and swapped in; a failure before that changes nothing."""
    import os
    from pathlib import Path

    from classifier.model_files import save
    from classifier.training.estimator import TaskClassifier

    d = tmp_path / "m"
    shutil.copytree(small_model_dir, d)
    (d / "notes").mkdir()
    (d / "notes" / "why.txt").write_text("trained for the demo")
    before = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
    clf = TaskClassifier(cv=0).fit(small_data.texts, small_data.labels)
    real_rename, real_fsync = os.rename, os.fsync
    written: list[int] = []

    def rename(src, dst):
        if fails_at == "swapping" and Path(src).name.startswith(".m.new-"):
            raise OSError("disk full")
        return real_rename(src, dst)

    def fsync(fd):  # each file is flushed to disk as it is written: the third one fails
        written.append(fd)
        if fails_at == "writing" and len(written) == 3:
            raise OSError("disk full")
        return real_fsync(fd)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(save.os, "rename", rename)
        mp.setattr(save.os, "fsync", fsync)
        with pytest.raises(OSError, match="disk full"):
            clf.save(d)
    assert {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # nothing half-written left beside it
    clf.save(d)  # and a save that succeeds replaces it, keeping the folder of notes
    assert Cascade.load(d).static is None and (d / "notes" / "why.txt").read_text() == "trained for the demo"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_the_static_head_can_have_a_c_of_its_own(tmp_path):
    """`static_C` fits the static head alone with another C (recorded in the manifest); the MiniLM head is as before."""
    from classifier.data import load_dataset
    from classifier.errors import InvalidParameterError
    from classifier.training.train import train_cascade
    from tests.conftest import ROOT

    data = load_dataset(ROOT / "tests/data/three_labels.csv")
    train_cascade(data, out=tmp_path / "same", C=4.0, progress=False)
    train_cascade(data, out=tmp_path / "own", C=4.0, static_C=0.01, progress=False)
    arrays = {}
    for name in ("same", "own"):
        with np.load(tmp_path / name / "static.npz") as s, np.load(tmp_path / name / "weights.npz") as w:
            arrays[name] = {"static": s["coef"].copy(), "minilm": w["coef"].copy()}
    assert np.array_equal(arrays["same"]["minilm"], arrays["own"]["minilm"])
    assert np.abs(arrays["own"]["static"]).sum() < np.abs(arrays["same"]["static"]).sum()  # more regularised
    training = {n: json.loads((tmp_path / n / "manifest.json").read_text())["training"] for n in ("same", "own")}
    assert (training["same"]["static_C"], training["own"]["static_C"]) == (4.0, 0.01)
    with pytest.raises(InvalidParameterError, match="static_C"):
        train_cascade(data, static=False, static_features=False, static_C=1.0, progress=False)
