"""A stage is one file: a toy stage from one new module (`tests/plugins/length_rule.py`) trains, saves, loads and
evaluates with the rest, and no file of `classifier/` or `routing/` names it."""

import json
import shutil
import subprocess
import sys

import pytest

from classifier import Cascade
from classifier.data import Dataset, load_dataset
from classifier.errors import ModelFileError
from classifier.training.evaluate import evaluate
from classifier.training.train import train_cascade
from tests.conftest import ROOT
from tests.plugins.length_rule import FILE, LengthRule, LengthRuleStage

SHORT = ("hi", "hey", "yo!")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    rows = load_dataset(ROOT / "tests/data/three_labels.csv")  # 42 rows: legal, sql, chitchat
    data = Dataset(rows.texts + SHORT, rows.labels + ("chitchat",) * len(SHORT), None)
    out = tmp_path_factory.mktemp("plugin") / "m"
    cascade, _ = train_cascade(data, out=out, progress=False, stages=[LengthRule("chitchat")])
    return out, cascade


def test_the_stage_is_trained_and_served_after_the_rules(model):
    _, cascade = model
    assert [s.name for s in cascade.stages][:2] == ["heuristic", "length"]
    stage = cascade.stage("length")
    assert isinstance(stage, LengthRuleStage) and stage.max_chars >= max(len(t) for t in SHORT)
    d = cascade.classify("hello")
    assert (d.label, d.stage, d.escalated) == ("chitchat", "length", False)


def test_the_manifest_lists_it_in_order_with_its_checked_file(model):
    out, _ = model
    manifest = json.loads((out / "manifest.json").read_text())
    entries = manifest["cascade"]["stages"]
    assert [e["name"] for e in entries] == ["heuristic", "length", "scope", "static", "embedding", "llm"]
    assert entries[1] == {"name": "length", "kind": "length_rule", "config": {"file": FILE}, "files": [FILE]}
    assert FILE in manifest["files"]


def test_a_load_rebuilds_it_from_the_manifest_and_evaluate_counts_it(model):
    out, _ = model
    cascade = Cascade.load(out)
    assert [s.name for s in cascade.stages] == ["heuristic", "length", "static", "embedding"]
    assert cascade.classify("hey there").stage == "length"
    long_query = "How do I write a SQL query that joins three tables and groups by month?"
    assert cascade.classify(long_query).stage != "length"
    data = Dataset(("hi you", long_query), ("chitchat", "sql"), None)
    metrics, decisions, _ = evaluate(cascade, data, progress=False)
    assert decisions[0].stage == "length"
    assert metrics["stages"]["length"]["n"] == 1 and metrics["stages"]["length"]["accuracy"] == 1.0


def test_its_file_is_verified_like_every_other(model, tmp_path):
    out, _ = model
    copy = shutil.copytree(out, tmp_path / "m")
    (copy / FILE).write_text((copy / FILE).read_text().replace('"chitchat"', '"legalese"'))
    with pytest.raises(ModelFileError, match=f"{FILE}: sha256 does not match"):
        Cascade.load(copy)


def test_a_model_naming_a_kind_nobody_imported_is_refused_by_name(model):
    """In a fresh process that never imports the plugin, the model is refused with the kind it needs."""
    out, _ = model
    code = f"from classifier import Cascade\nCascade.load({str(out)!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0
    assert "'length_rule'" in proc.stderr and "import the module that defines it" in proc.stderr


def test_adding_it_changed_no_file_of_the_packages():
    """The toy stage is named only in its own module and this test."""
    found = subprocess.run(
        ["git", "grep", "-l", "-e", "length_rule", "-e", "LengthRule", "--", "classifier", "routing"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert found.stdout == ""


def test_a_stage_file_named_outside_the_model_directory_is_refused_at_save(tmp_path):
    """A stage names its own files; `../x` would be written next to the model directory (and never load)."""
    from dataclasses import dataclass

    from classifier.serving.stages import StageManifest

    class EscapingStage(LengthRuleStage):
        def to_manifest(self) -> StageManifest:
            return StageManifest(self.name, self.kind, {"file": "../escaped.json"}, {"../escaped.json": b"{}"})

    @dataclass
    class EscapingRule(LengthRule):
        def fit(self, texts, labels):
            stage = super().fit(texts, labels)
            return EscapingStage(stage.label, stage.max_chars)

    rows = load_dataset(ROOT / "tests/data/three_labels.csv")
    data = Dataset(rows.texts + SHORT, rows.labels + ("chitchat",) * len(SHORT), None)
    with pytest.raises(ValueError, match=r"plain names inside the model directory, got \['\.\./escaped\.json'\]"):
        train_cascade(data, out=tmp_path / "m", progress=False, stages=[EscapingRule("chitchat")])
    assert not (tmp_path / "escaped.json").exists()


def test_calibration_rows_a_stage_answers_are_left_out_of_the_thresholds():
    """As on the training rows: the heads' thresholds are read on what reaches them, so calibration rows the user's
    stage answers move no threshold."""
    rows = load_dataset(ROOT / "tests/data/three_labels.csv")
    data = Dataset(rows.texts + SHORT, rows.labels + ("chitchat",) * len(SHORT), None)
    calibration = Dataset(rows.texts[::2], rows.labels[::2], None)
    short = tuple(f"ok{i}" for i in range(40))  # the length stage answers these; the heads would pass them on
    padded = Dataset(calibration.texts + short, calibration.labels + ("sql",) * len(short), None)
    thresholds = []
    for held in (calibration, padded):
        cascade, _ = train_cascade(data, calibration=held, progress=False, stages=[LengthRule("chitchat")])
        assert {d.stage for d in cascade.classify_batch(list(short))} == {"length"}
        thresholds.append([(s.name, getattr(s, "threshold", None)) for s in cascade.stages])
    assert thresholds[0] == thresholds[1]
