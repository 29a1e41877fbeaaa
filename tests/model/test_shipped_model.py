"""The model inside the package is the one `data/queries.jsonl` trains, and it loads with no arguments.

A fresh training run is not compared bit for bit: float sums in the embedding pass differ across machines and
thread counts. What must match is what the model does: its decisions on a fixed query set, the rules it keeps,
and its cross-validated metrics (within the tolerances stated below).
"""

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


@pytest.mark.integration  # end to end: a full training run, about 1 min
def test_a_fresh_training_run_decides_like_the_shipped_model(tmp_path):
    data = load_dataset(DATA)
    _, manifest, _ = load_manifest(DEFAULT_MODEL_DIR)
    assert manifest.training["data_sha256"] == data.sha256(), "data/queries.jsonl changed: retrain the model"
    encoder = manifest.params.get("encoder", "base")
    cross_fit = CrossFit.load(ROOT / "data/queries.crossfit.npz") if encoder == "tuned" else None
    calibration = _calibration(manifest.training.get("calibration"))
    chosen = {k: manifest.params[k] for k in ("C", "lexical_weight") if k in manifest.params}  # by the folds
    fresh, report = train_cascade(
        data,
        out=tmp_path / "fresh",
        progress=False,
        encoder=encoder,
        cv_vectors=cross_fit,
        calibration=calibration,
        **chosen,
    )
    shipped = Cascade.load()
    probes = [json.loads(line)["text"] for line in PROBES.open(encoding="utf-8") if line.strip()]
    assert len(probes) >= 100
    ours = [d.label for d in shipped.classify_batch(probes)]
    theirs = [d.label for d in Cascade.load(tmp_path / "fresh").classify_batch(probes)]
    agreement = sum(a == b for a, b in zip(ours, theirs, strict=True)) / len(probes)
    assert agreement >= MIN_AGREEMENT, agreement
    assert abs(report.cv_accuracy - manifest.metrics["cv_accuracy"]) <= CV_TOLERANCE
    assert abs(report.cv_macro_f1 - manifest.metrics["cv_macro_f1"]) <= CV_TOLERANCE
    assert [r.enabled for r in fresh.rules.rules] == [r.enabled for r in shipped.rules.rules]
    if calibration is not None:  # the same rows read the same thresholds (within float noise across machines)
        assert fresh.threshold == pytest.approx(shipped.threshold, abs=0.01)
        assert fresh.static_threshold == pytest.approx(shipped.static_threshold, abs=0.01)


def _calibration(recorded: dict | None):
    """The calibration rows the shipped model's thresholds were read on, where a copy with that sha256 is here
    (the public corpus is never committed: without it the labels are still compared, the thresholds not)."""
    if recorded is None:
        return None
    for path in (ROOT / "data/public/corpus.jsonl", ROOT.parent / "shared/data/public/corpus.jsonl"):
        if path.is_file() and (rows := load_dataset(path)).sha256() == recorded["data_sha256"]:
            return rows
    return None
