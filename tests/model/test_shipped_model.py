"""The model inside the package is the one `data/queries.jsonl` trains, and it loads with no arguments.

A fresh training run is not compared bit for bit: float sums in the embedding pass differ across machines and
thread counts. What must match is what the model does: its decisions on a fixed query set, the rules it keeps,
and its cross-validated metrics (within the tolerances stated below).
"""

import functools
import json

import pytest

from classifier import TaskClassifier, load_dataset
from classifier.model_files import DEFAULT_MODEL_DIR, load_manifest
from classifier.serving.cascade import Cascade
from classifier.training.train import train_cascade
from classifier.training.tune import CrossFit
from tests.conftest import DATA, ROOT

PROBES = ROOT / "tests" / "data" / "probe_queries.jsonl"
"""A fixed set of queries written for this check (not training data): every label, short and long."""
MIN_AGREEMENT = 0.98
"""Share of probe queries on which a fresh model must decide the shipped model's label."""
CV_TOLERANCE = 0.01
"""Largest difference allowed between a fresh run's cross-validated accuracy / macro-F1 and the manifest's."""


def test_shipped_model_loads_without_arguments():
    cascade = Cascade.load()
    assert cascade.labels == ["code", "creative", "default", "math"]
    assert 0 < cascade.threshold < 1
    assert TaskClassifier.load().predict(["what is 15% of 80?"]).shape == (1,)


CALIBRATION_COPIES = (ROOT / "data/public/corpus.jsonl", ROOT.parent / "shared/data/public/corpus.jsonl")
"""Where a copy of the public corpus the shipped thresholds were read on may be (it is never committed)."""


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory):
    """A full training run on `data/queries.jsonl` with the shipped model's settings: (cascade, report, its dir)."""
    data = load_dataset(DATA)
    _, manifest, _ = load_manifest(DEFAULT_MODEL_DIR)
    assert manifest.training["data_sha256"] == data.sha256(), "data/queries.jsonl changed: retrain the model"
    encoder = manifest.params.get("encoder", "base")
    cross_fit = CrossFit.load(ROOT / "data/queries.crossfit.npz") if encoder == "tuned" else None
    recorded = manifest.training.get("calibration")
    calibration = _calibration(recorded["data_sha256"]) if recorded else None
    chosen = {k: manifest.params[k] for k in ("C", "lexical_weight") if k in manifest.params}  # by the folds
    if manifest.training.get("static_C") is not None:  # the static head's own C (older models: the same C)
        chosen["static_C"] = manifest.training["static_C"]
    out = tmp_path_factory.mktemp("fresh") / "fresh"
    fresh, report = train_cascade(
        data,
        out=out,
        progress=False,
        encoder=encoder,
        cv_vectors=cross_fit,
        calibration=calibration,
        **chosen,
    )
    return fresh, report, out


@pytest.mark.integration  # end to end: a full training run, about 1 min
def test_a_fresh_training_run_decides_like_the_shipped_model(fresh_run):
    fresh, report, out = fresh_run
    _, manifest, _ = load_manifest(DEFAULT_MODEL_DIR)
    shipped = Cascade.load()
    probes = [json.loads(line)["text"] for line in PROBES.open(encoding="utf-8") if line.strip()]
    assert len(probes) >= 100
    ours = [d.label for d in shipped.classify_batch(probes)]
    theirs = [d.label for d in Cascade.load(out).classify_batch(probes)]
    agreement = sum(a == b for a, b in zip(ours, theirs, strict=True)) / len(probes)
    assert agreement >= MIN_AGREEMENT, agreement
    assert abs(report.cv_accuracy - manifest.metrics["cv_accuracy"]) <= CV_TOLERANCE
    assert abs(report.cv_macro_f1 - manifest.metrics["cv_macro_f1"]) <= CV_TOLERANCE
    assert [r.enabled for r in fresh.rules.rules] == [r.enabled for r in shipped.rules.rules]


@pytest.mark.integration  # end to end: a full training run, about 1 min
def test_a_fresh_training_run_reads_the_shipped_thresholds(request):
    """The same calibration rows read the same thresholds (within float noise across machines)."""
    _, manifest, _ = load_manifest(DEFAULT_MODEL_DIR)
    recorded = manifest.training.get("calibration")
    if recorded is None:
        pytest.skip("the shipped model's manifest records no calibration rows")
    if _calibration(recorded["data_sha256"]) is None:
        checked = ", ".join(str(p) for p in CALIBRATION_COPIES)
        pytest.skip(f"no calibration rows with sha256 {recorded['data_sha256']} (checked {checked})")
    fresh, _, _ = request.getfixturevalue("fresh_run")
    shipped = Cascade.load()
    assert fresh.threshold == pytest.approx(shipped.threshold, abs=0.01)
    assert fresh.static_threshold == pytest.approx(shipped.static_threshold, abs=0.01)


@functools.cache
def _calibration(sha256: str):
    """The calibration rows the shipped model's thresholds were read on, where a copy with that sha256 is here."""
    for path in CALIBRATION_COPIES:
        if path.is_file() and (rows := load_dataset(path)).sha256() == sha256:
            return rows
    return None
