"""`evaluate_cascade`: the computing behind `taskrouter evaluate`, with stage names read from the cascade."""

import json

import pytest

from classifier import Cascade
from classifier.data import Dataset
from classifier.errors import InvalidParameterError
from classifier.training.evaluate import EvaluationReport, evaluate_cascade, save_sweeps
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def rows():
    lines = (ROOT / "data" / "queries.jsonl").read_text(encoding="utf-8").splitlines()[-30:]
    records = [json.loads(line) for line in lines]
    return Dataset(tuple(r["text"] for r in records), tuple(r["label"] for r in records), None)


@pytest.fixture(scope="module")
def cascade():
    return Cascade.load()


def test_the_report_counts_every_stage_of_the_cascade_in_order(cascade, rows, tmp_path):
    report = evaluate_cascade(cascade, rows, llm_mode="oracle", progress=False)
    assert isinstance(report, EvaluationReport) and len(report.decisions) == len(rows.texts)
    assert list(report.metrics["stages"]) == [s.name for s in cascade.stages] + ["llm"]
    assert report.metrics["sweep"]["rows"] == list(report.sweep) and report.sweep
    assert len(report.misclassified) == sum(d.label != y for d, y in zip(report.decisions, rows.labels, strict=True))
    saved = save_sweeps(report, tmp_path / "sweep")
    assert (tmp_path / "sweep.csv").is_file() and saved.metrics["sweep"]["png"] == str(tmp_path / "sweep.png")
    assert "csv" not in report.metrics["sweep"]  # the report itself is left as it was


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"llm_mode": "labels"}, "'answers' parameter"), ({"by": "source"}, "'by' parameter")],
    ids=["labels-without-answers", "by-source-without-sources"],
)
def test_bad_arguments_are_refused_before_any_work(cascade, rows, kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        evaluate_cascade(cascade, rows, **kwargs)
