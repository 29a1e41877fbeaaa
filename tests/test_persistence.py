"""Saved models: round trip, and every way a model directory can be wrong."""

import io
import json
import shutil
import zipfile

import numpy as np
import pytest

from classifier import ModelFileError, TaskClassifier
from classifier.cascade import Cascade
from classifier.persistence import load_manifest


@pytest.fixture
def model_dir(small_model_dir, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(small_model_dir, d)
    return d


def test_round_trip_gives_identical_probabilities(small_model_dir, small_data):
    loaded = TaskClassifier.load(small_model_dir)
    again = TaskClassifier.load(small_model_dir)
    texts = list(small_data.texts[:20])
    assert np.array_equal(loaded.predict_proba(texts), again.predict_proba(texts))
    _, manifest = load_manifest(small_model_dir)
    assert manifest["format_version"] == 2 and manifest["params"]["static_features"] is True
    assert manifest["embedder"] == {
        "id": "sentence-transformers/all-MiniLM-L6-v2", "dim": 384}
    assert manifest["training"]["data_sha256"] == small_data.sha256()
    assert set(manifest["files"]) == {"weights.npz", "examples.npz", "examples.json", "static.npz"}
    assert {"scikit-learn", "numpy", "python"} <= set(manifest["versions"])
    assert "threshold" in manifest["cascade"] and manifest["cascade"]["curve"]


def _rewrite_manifest(d, **changes):
    m = json.loads((d / "manifest.json").read_text())
    m.update(changes)
    (d / "manifest.json").write_text(json.dumps(m))


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("damage", "match"), [
    (lambda d: _flip_byte(d / "weights.npz"), "weights.npz: sha256 mismatch"),
    (lambda d: (d / "examples.json").write_bytes((d / "examples.json").read_bytes()[:100]), "truncated"),
    (lambda d: (d / "evil.pkl").write_bytes(b"\x80\x04."), r"not listed in the manifest: \['evil.pkl'\]"),
    (lambda d: (d / "manifest.json").unlink(), "no manifest.json"),
    (lambda d: (d / "manifest.json").write_text("{not json"), "not valid JSON"),
    (lambda d: _rewrite_manifest(d, format_version=99), "format_version 99 is not supported"),
    (lambda d: _rewrite_manifest(d, kind="sklearn.Pipeline"), "not a taskrouter.TaskClassifier manifest"),
    (lambda d: _rewrite_manifest(d, embedder={"id": "other", "dim": 768}), "trained with embedder"),
    (lambda d: (d / "examples.npz").unlink(), "missing file 'examples.npz'"),
], ids=["flipped-byte", "truncated", "foreign-file", "no-manifest", "bad-json", "future-format", "foreign-kind",
        "other-embedder", "missing-file"])
def test_damaged_model_is_refused(model_dir, damage, match):
    damage(model_dir)
    with pytest.raises(ModelFileError, match=match):
        TaskClassifier.load(model_dir)
    with pytest.raises(ModelFileError):
        Cascade.load(model_dir)


class Payload:
    """Pickling this runs a command on load, if anything ever unpickles it."""

    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def _replace_weights_keeping_hashes_valid(model_dir, **arrays):
    """Swap weights.npz and update the manifest to match, as an attacker with write access could."""
    import hashlib

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (model_dir / "weights.npz").write_bytes(buf.getvalue())
    m = json.loads((model_dir / "manifest.json").read_text())
    m["files"]["weights.npz"] = {"sha256": hashlib.sha256(buf.getvalue()).hexdigest(), "bytes": len(buf.getvalue())}
    (model_dir / "manifest.json").write_text(json.dumps(m))


def test_pickled_payload_with_matching_hash_is_not_executed(model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _replace_weights_keeping_hashes_valid(model_dir, coef=np.array([Payload()], dtype=object),
                                          intercept=np.zeros(4), idf=np.zeros(4))
    with pytest.raises(ModelFileError, match="unreadable array file"):
        TaskClassifier.load(model_dir)
    assert not (tmp_path / "PWNED").exists()


def test_inconsistent_shapes_are_refused(model_dir):
    _replace_weights_keeping_hashes_valid(model_dir, coef=np.zeros((4, 10)), intercept=np.zeros(4), idf=np.zeros(3))
    with pytest.raises(ModelFileError, match="inconsistent model: coef shape"):
        TaskClassifier.load(model_dir)


def test_not_a_zip_is_refused(model_dir):
    assert zipfile.is_zipfile(model_dir / "weights.npz")
    with pytest.raises(ModelFileError):
        TaskClassifier.load(model_dir / "nowhere")


def test_a_file_changed_after_its_check_is_still_refused(model_dir, monkeypatch):
    import classifier.persistence as persistence

    checked = persistence.load_manifest

    def check_then_tamper(directory=None):
        result = checked(directory)
        _flip_byte(model_dir / "weights.npz")  # between the hash check and the parse
        return result

    monkeypatch.setattr(persistence, "load_manifest", check_then_tamper)
    with pytest.raises(ModelFileError, match="weights.npz: does not match the manifest"):
        TaskClassifier.load(model_dir)
