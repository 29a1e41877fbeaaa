"""Tuning the encoder: parameters checked at the door, deterministic for a seed, exported and served like the
base encoder; a model is refused when the encoder it was trained with is not the installed one."""

import json
import shutil

import numpy as np
import pytest

from classifier.errors import InvalidParameterError, LabelError
from classifier.serving import assets
from classifier.training.tune import TorchEncoder, TuneRecipe, tune_encoder
from tests.conftest import ROOT, small_dataset

PROBES = [json.loads(line)["text"] for line in (ROOT / "tests/data/probe_queries.jsonl").open()]


@pytest.fixture(scope="module")
def tiny():
    data = small_dataset(per_label=12)
    return list(data.texts), list(data.labels)


@pytest.fixture(scope="module")
def tuned_dir(tmp_path_factory, tiny):
    return tune_encoder(*tiny, tmp_path_factory.mktemp("tuned") / "enc", TuneRecipe(epochs=1, batch_size=16),
                        progress=False)  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("objective", "triplet"),
        ("epochs", 0),
        ("learning_rate", 2.0),
        ("batch_size", 1),
        ("max_tokens", 4),
        ("seed", -1),
    ],  # fmt: skip
)
def test_a_bad_recipe_names_its_parameter(tiny, tmp_path, field, value):
    with pytest.raises(InvalidParameterError, match=f"'{field}' parameter") as exc:
        tune_encoder(*tiny, tmp_path / "x", TuneRecipe(**{field: value}))
    assert exc.value.parameter == field
    assert not (tmp_path / "x").exists()  # checked before anything is loaded or written


def test_bad_labels_and_devices_fail_first(tiny, tmp_path):
    with pytest.raises(LabelError):
        tune_encoder(tiny[0], ["only"] * len(tiny[0]), tmp_path / "x")
    with pytest.raises(InvalidParameterError, match="'texts' parameter"):
        tune_encoder(tiny[0][:-1], tiny[1], tmp_path / "x")
    with pytest.raises(InvalidParameterError, match="'device' parameter"):
        tune_encoder(*tiny, tmp_path / "x", device="tpu")


def test_the_same_seed_gives_the_same_encoder(tiny, tuned_dir, tmp_path):
    again = tune_encoder(*tiny, tmp_path / "again", TuneRecipe(epochs=1, batch_size=16), progress=False)
    other = tune_encoder(*tiny, tmp_path / "other", TuneRecipe(epochs=1, batch_size=16, seed=1), progress=False)
    a, b, c = (TorchEncoder(d).encode(PROBES[:16], progress=False) for d in (tuned_dir, again, other))
    assert np.array_equal(a, b)
    assert not np.allclose(a, c, atol=1e-4)
    record = json.loads((tuned_dir / "taskrouter-tune.json").read_text())
    assert record["rows"] == len(tiny[0]) and record["recipe"]["epochs"] == 1


def test_tuning_moves_the_vectors_and_the_contrastive_objective_runs(tiny, tuned_dir, tmp_path):
    from classifier.serving.encoder import model_dir

    base = TorchEncoder(model_dir()).encode(PROBES[:16], progress=False)
    tuned = TorchEncoder(tuned_dir).encode(PROBES[:16], progress=False)
    assert (base * tuned).sum(axis=1).min() < 0.9999  # one epoch of 3 batches moves every vector a little
    contrastive = tune_encoder(*tiny, tmp_path / "c", TuneRecipe(objective="contrastive", epochs=1, batch_size=16),
                               progress=False)  # fmt: skip
    assert (contrastive / "model.safetensors").is_file()


def test_the_exported_graph_and_table_serve_the_tuned_vectors(tuned_dir, tmp_path):
    """make_assets turns a tuned directory into an fp16-stored graph with the torch model's vectors, and a table;
    the base encoder's entries in assets.json are kept."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from classifier.building import make_assets
    from classifier.serving.embedding import serving_embedder
    from classifier.serving.encoder import ENCODERS
    from classifier.serving.onnx_embedding import MAX_TOKENS, _head_and_tail

    dest = tmp_path / "assets"
    dest.mkdir()
    shutil.copyfile(assets.ASSETS_DIR / assets.RECORD, dest / assets.RECORD)
    before = serving_embedder("tuned")
    record = make_assets.build(dest, encoder="tuned", source=tuned_dir)
    # Before: the process kept serving (and training on) the graph it had opened, and its cached vectors.
    assert serving_embedder("tuned") is not before
    tuned = ENCODERS["tuned"]
    assert (
        record["files"][assets.ONNX]
        == json.loads((assets.ASSETS_DIR / assets.RECORD).read_text())["files"][assets.ONNX]
    )
    assert record["made_from"]["tuned"]["tuned"]["rows"] == 48
    session = ort.InferenceSession(assets.read(tuned.onnx_file, dest), providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_str(assets.read(assets.TOKENIZER, dest).decode())
    tok.no_truncation()
    tok.no_padding()
    ids, mask = _head_and_tail([e.ids for e in tok.encode_batch(PROBES)], MAX_TOKENS)
    (served,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
    reference = TorchEncoder(tuned_dir).encode(PROBES, progress=False)
    assert (served * reference).sum(axis=1).min() > 0.9999
    table, _ = assets.read_static_table(dest, tuned.static_file)
    assert table.shape[1] == 384


def _manifest(model_dir):
    return json.loads((model_dir / "manifest.json").read_text())


def test_the_shipped_model_names_its_encoder_and_its_sha256():
    from classifier.model_files import DEFAULT_MODEL_DIR
    from classifier.serving.encoder import encoder_of

    m = _manifest(DEFAULT_MODEL_DIR)
    main = next(e for e in m["embedders"] if not e.get("probes_file"))
    enc = encoder_of(main["id"])
    assert enc is not None and main["sha256"] == assets.recorded_sha256(enc.onnx_file)
    assert m["params"]["encoder"] == enc.name


@pytest.fixture
def tuned_model_copy(tmp_path):
    """A copy of the shipped model, which reads the tuned encoder."""
    from classifier.model_files import DEFAULT_MODEL_DIR
    from classifier.serving.encoder import ENCODERS

    if _manifest(DEFAULT_MODEL_DIR)["params"].get("encoder") != "tuned":
        pytest.skip("the shipped model reads the base encoder")
    shutil.copytree(DEFAULT_MODEL_DIR, tmp_path / "model")
    return tmp_path / "model", ENCODERS["tuned"]


def test_a_model_of_another_tuning_is_refused_naming_the_encoder(tuned_model_copy):
    from classifier.errors import ModelFileError
    from classifier.model_files import MANIFEST
    from classifier.serving.cascade import Cascade

    model, enc = tuned_model_copy
    m = _manifest(model)
    for e in m["embedders"]:
        if e["id"] == enc.embedder_id:
            e["sha256"] = "0" * 64
    (model / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(ModelFileError, match=r"tuned encoder .* sha256 000000000000, but the installed"):
        Cascade.load(model)


def test_a_model_whose_encoder_is_not_installed_is_refused(tuned_model_copy, tmp_path):
    """In a copy of the package without the tuned graph, its record entry removed: a clear refusal."""
    import os
    import subprocess
    import sys

    model, enc = tuned_model_copy
    shutil.copytree(ROOT / "classifier", tmp_path / "pkg/classifier", ignore=shutil.ignore_patterns("__pycache__"))
    folder = tmp_path / "pkg/classifier/assets"
    (folder / enc.onnx_file).unlink()
    record = json.loads((folder / assets.RECORD).read_text())
    del record["files"][enc.onnx_file]
    (folder / assets.RECORD).write_text(json.dumps(record))
    code = (
        "from classifier.serving.cascade import Cascade\nfrom classifier.errors import ModelFileError\n"
        f"try:\n    Cascade.load({str(model)!r})\nexcept ModelFileError as e:\n    print(e)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "pkg")}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path / "pkg", timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert f"trained with the tuned encoder '{enc.embedder_id}'" in r.stdout
    assert "not installed here (minilm-tuned.onnx is missing)" in r.stdout


def test_cross_fitted_vectors_come_from_encoders_that_did_not_see_the_row(tiny, tuned_dir, tmp_path):
    from classifier.training.tune import CrossFit, cross_fit
    from classifier.window import window

    texts, labels = list(tiny[0]), tiny[1]
    long = texts[5] + " " + "." * 4000 + " " + texts[5]  # training reads its window: the lookup key is the window's
    texts[5] = long
    cf = cross_fit(texts, labels, TuneRecipe(epochs=1, batch_size=16), encoder_sha256="ab" * 32, progress=False)
    assert cf.lookup([window(long)])[0].tolist() == [True]
    assert cf.minilm.shape == cf.static.shape == (len(texts), 384)
    norms = np.linalg.norm(cf.minilm, axis=1), np.linalg.norm(cf.static, axis=1)
    assert np.allclose(norms[0], 1, atol=1e-4) and np.allclose(norms[1], 1, atol=1e-3)
    whole = TorchEncoder(tuned_dir).encode(texts, progress=False)  # tuned on every row, the same recipe
    assert (cf.minilm * whole).sum(axis=1).max() < 0.99999  # each row's vector comes from another encoder
    saved = CrossFit.load(cf.save(tmp_path / "cf.npz"))
    found, minilm, _ = saved.lookup([texts[3], "a text nobody tuned on"])
    assert found.tolist() == [True, False] and np.allclose(minilm[0], cf.minilm[3], atol=1e-3)
    assert saved.encoder_sha256 == "ab" * 32


def test_cross_fitted_vectors_of_another_encoder_are_refused(tiny, tmp_path):
    from classifier.data import Dataset
    from classifier.training.train import train_cascade
    from classifier.training.tune import CrossFit

    texts, labels = tiny
    stale = CrossFit(np.array([CrossFit.key(t) for t in texts]), np.zeros((len(texts), 384)),
                     np.zeros((len(texts), 384)), "0" * 64)  # fmt: skip
    with pytest.raises(InvalidParameterError, match="'cv_vectors' parameter"):
        train_cascade(Dataset(tuple(texts), tuple(labels)), encoder="tuned", cv_vectors=stale, progress=False)
    with pytest.raises(InvalidParameterError, match="'cv_vectors' parameter"):
        train_cascade(Dataset(tuple(texts), tuple(labels)), cv_vectors=stale, progress=False)  # the base encoder


def test_auto_picks_the_tuned_encoder_only_for_the_labels_it_was_tuned_on():
    """The tuned encoder serves other label sets worse (benchmarks/encoder_forgetting.json): `train --encoder
    auto` keeps it for its own labels only."""
    from routing.cli import EncoderChoice, _encoder_for

    if assets.tuned_labels() is None:
        pytest.skip("no tuned encoder installed")
    assert _encoder_for(EncoderChoice.auto, ["legal", "sql", "chitchat", "sql"])[0] == "base"
    assert _encoder_for(EncoderChoice.auto, assets.tuned_labels() * 2)[0] == "tuned"
    assert _encoder_for(EncoderChoice.base, assets.tuned_labels())[0] == "base"


def test_tune_encoder_without_install_says_it_made_no_cross_fitted_vectors(tmp_path, tiny):
    """Before: --no-install skipped cross-fitting silently, though --cross-fit (the default) promises the file."""
    from typer.testing import CliRunner

    from routing.cli import app

    data = tmp_path / "tiny.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(*tiny, strict=True)))
    result = CliRunner().invoke(app, ["tune-encoder", "--data", str(data), "--out", str(tmp_path / "enc"),
                                      "--epochs", "1", "--no-install"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "no cross-fitted vectors" in result.output and "--no-install" in result.output
    assert not (tmp_path / "enc" / "crossfit.npz").exists()
