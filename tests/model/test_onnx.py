"""The ONNX paths: the fp32 export gives sentence-transformers' vectors and decisions, the shipped int8 graph
stays close, neither imports torch, and cached files are verified. (The shipped files: test_assets.py.)"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from classifier import ConfigError, ModelFileError
from classifier.serving.cascade import Cascade
from classifier.serving.embedding import MiniLMEmbedder, load_embedder, reference_embedder
from classifier.serving.onnx_embedding import OnnxMiniLMEmbedder
from classifier.serving.onnx_int8 import FILE as INT8
from classifier.serving.onnx_int8 import build, cache_dir
from tests.conftest import DATA, ROOT

EDGE_CASES = [
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\n\n",
    "word " * 400,  # > 256 tokens
    "Straße, ÉCOLE, naïve façade",
    "日本語のテキストを分類する",
    "x",
    "🙂 emoji only 🚀",
]


@pytest.fixture(scope="module")
def queries():
    rows = [json.loads(line) for line in DATA.open(encoding="utf-8")]
    return [r["text"] for r in rows[::13]][:300]


@pytest.fixture(scope="module")
def onnx_fp32():
    return OnnxMiniLMEmbedder(max_tokens=None, cache_size=0).load()  # the first 256 tokens, as sentence-transformers


def _cos(a, b):
    return (a * b).sum(axis=1)  # both sides are L2-normalised


def test_vectors_match_sentence_transformers(onnx_fp32, queries):
    texts = queries + EDGE_CASES
    torch_vecs = MiniLMEmbedder(cache_size=0).encode(texts, progress=False)
    batched = onnx_fp32.encode(texts, progress=False)
    single = np.vstack([onnx_fp32.encode([t]) for t in texts[:60] + EDGE_CASES])  # unpadded batches of one
    assert batched.shape == (len(texts), 384) and batched.dtype == np.float32
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert _cos(batched, torch_vecs).min() >= 0.99
    assert _cos(single, np.vstack([torch_vecs[:60], torch_vecs[-len(EDGE_CASES) :]])).min() >= 0.99


def test_the_token_window_changes_only_long_texts(onnx_fp32, queries):
    from classifier.serving.onnx_embedding import MAX_TOKENS

    windowed = OnnxMiniLMEmbedder(cache_size=0)
    assert windowed.max_tokens == MAX_TOKENS
    long_text = "Summarize this report. " + "The committee met and discussed the budget at length. " * 60
    texts = queries + [long_text]
    n_tokens = [len(e.ids) for e in windowed.load()._tokenizer.encode_batch(texts)]
    cos = _cos(windowed.encode(texts, progress=False), onnx_fp32.encode(texts, progress=False))
    short = np.array(n_tokens) <= MAX_TOKENS
    assert short.sum() > 200 and cos[short].min() > 0.99999
    assert n_tokens[-1] > 256 and 0.5 < cos[-1] < 0.99999  # read differently, still about the same thing


def test_int8_variant_stays_close(onnx_fp32, queries):
    int8 = OnnxMiniLMEmbedder(quantize=True, max_tokens=None, cache_size=0).load()
    cos = _cos(int8.encode(queries, progress=False), onnx_fp32.encode(queries, progress=False))
    assert cos.mean() >= 0.98 and cos.min() >= 0.9
    assert int8.backend == "onnx-int8" and int8.id == onnx_fp32.id == reference_embedder().id


def test_shipped_cascade_decides_the_same_with_onnx(onnx_fp32, queries):
    with_torch, with_onnx = Cascade.load(cache_size=0), Cascade.load(cache_size=0)
    with_torch.classifier.embedder = MiniLMEmbedder(cache_size=0)
    with_onnx.classifier.embedder = onnx_fp32
    a, b = with_torch.classify_batch(queries), with_onnx.classify_batch(queries)
    same = [(x.label, x.stage, x.escalated) == (y.label, y.stage, y.escalated) for x, y in zip(a, b, strict=True)]
    assert sum(same) >= 0.99 * len(queries)
    conf = [(x.confidence, y.confidence) for x, y in zip(a, b, strict=True) if x.stage == "embedding"]
    assert max(abs(x - y) for x, y in conf) < 0.01


def test_encoding_from_many_threads_gives_the_same_vectors(queries):
    emb = OnnxMiniLMEmbedder(cache_size=0)
    expected = emb.encode(queries[:40], progress=False)
    results, errors = {}, []

    def work(k):
        try:
            results[k] = np.vstack([emb.encode([q]) for q in queries[k:40:4]])
        except Exception as exc:  # collected, so a failure in a thread fails the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k, got in results.items():
        assert _cos(got, expected[k:40:4]).min() > 0.9999


def test_classifying_with_onnx_does_not_import_torch_or_training_libraries(onnx_fp32):
    # scikit-learn and SciPy are training-time dependencies: importing them costs about a second of cold start.
    code = (
        "import sys; from classifier.serving.cascade import Cascade;"
        "from classifier.serving.embedding import default_embedder;"
        "d = Cascade.load().classify('Tell me about the history of jazz');"
        "print(default_embedder().backend, d.label,"
        "      *(m in sys.modules for m in ('torch', 'sentence_transformers', 'sklearn', 'scipy')))"
    )
    for backend, name in (("auto", "onnx"), ("onnx-int8", "onnx-int8")):
        env = {**os.environ, "TASKROUTER_EMBEDDER": backend}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=ROOT, timeout=300
        ).stdout.split()
        assert out == [name, "default", "False", "False", "False", "False"], (backend, out)


# -- the cached files -------------------------------------------------------------------------------------------
@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A copy of the verified int8 cache under tmp_path, so tampering never touches the user's cache."""
    build()
    source = cache_dir()
    monkeypatch.setenv("TASKROUTER_CACHE", str(tmp_path))
    target = cache_dir()
    target.mkdir(parents=True)
    for name in (INT8, INT8 + ".json"):
        shutil.copy2(source / name, target / name)
    return target


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _rewrite_record(path, **changes):
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


@pytest.mark.parametrize(
    ("tamper", "match"),
    [
        (lambda d: _flip_byte(d / INT8), "sha256 does not match its record"),
        (lambda d: (d / INT8).write_bytes((d / INT8).read_bytes()[:1000]), "size 1000 != recorded"),
        (lambda d: (d / (INT8 + ".json")).unlink(), "model.int8.onnx.json is missing"),
        (lambda d: (d / INT8).unlink(), "model.int8.onnx is missing"),
        (lambda d: _rewrite_record(d / (INT8 + ".json"), format=99), "not a taskrouter ONNX record"),
        (lambda d: (d / (INT8 + ".json")).write_text("{not json"), "unreadable"),
    ],
    ids=["flipped-byte", "truncated", "record-missing", "file-missing", "foreign-record", "bad-json"],
)
def test_an_unverified_file_is_never_loaded(private_cache, tamper, match):
    tamper(private_cache)
    with pytest.raises(ModelFileError, match=match):
        OnnxMiniLMEmbedder(quantize=True, allow_export=False).load()


def test_a_missing_cache_asks_for_a_build_when_export_is_off(private_cache):
    shutil.rmtree(private_cache)
    with pytest.raises(ModelFileError, match="taskrouter assets int8"):
        OnnxMiniLMEmbedder(quantize=True, allow_export=False).load()


def test_a_tampered_file_is_rebuilt(private_cache):
    model = private_cache / INT8
    original = OnnxMiniLMEmbedder(quantize=True, cache_size=0)
    texts = ["integrate x^2 from 0 to 1", "write a haiku about rain"]
    before = original.encode(texts)
    _flip_byte(model)
    tampered = hashlib.sha256(model.read_bytes()).hexdigest()
    rebuilt = OnnxMiniLMEmbedder(quantize=True, cache_size=0).load()
    record = json.loads((private_cache / (INT8 + ".json")).read_text())
    assert hashlib.sha256(model.read_bytes()).hexdigest() == record["sha256"] != tampered
    assert _cos(rebuilt.encode(texts), before).min() > 0.9999
    assert not [p.name for p in private_cache.iterdir() if p.name.endswith(".tmp")]


def test_the_int8_file_is_made_from_the_shipped_graph(private_cache):
    from classifier.serving import assets

    data = build()
    record = json.loads((private_cache / (INT8 + ".json")).read_text())
    shipped = assets.read(assets.ONNX)
    assert record["from_sha256"] == hashlib.sha256(shipped).hexdigest()
    assert record["sha256"] == hashlib.sha256(data).hexdigest() and len(data) < 0.6 * len(shipped)


@pytest.mark.parametrize(
    ("backend", "kind"),
    [("torch", MiniLMEmbedder), ("onnx", OnnxMiniLMEmbedder), (" ONNX-int8 ", OnnxMiniLMEmbedder)],
    ids=["torch", "onnx", "int8"],
)
def test_backends_by_name(backend, kind):
    assert type(load_embedder(backend)) is kind


def test_an_unknown_backend_names_the_variable():
    with pytest.raises(ConfigError, match=r"TASKROUTER_EMBEDDER: .*auto, torch, onnx, onnx-int8. Got 'gpu'"):
        load_embedder("gpu")
