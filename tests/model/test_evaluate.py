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


def test_the_oracle_answers_a_long_query_by_the_window_stage_3_reads():
    """Stage 3 reads a long query's window; the oracle's answers were keyed by the whole text, so a long escalated
    query got no answer in the report while the sweep counted it as answered."""
    long_query = "Tell me about the history of the Roman roads and who built them. " * 60  # 3,900 characters
    data = Dataset((long_query, "what is the capital of peru"), ("default", "default"), None)
    everything_escalates = Cascade.load(threshold=1.0, static=False, cache_size=0)
    report = evaluate_cascade(everything_escalates, data, llm_mode="oracle", progress=False)
    assert [d.stage for d in report.decisions] == ["llm", "llm"]
    assert [d.label for d in report.decisions] == ["default", "default"]
    assert report.metrics["accuracy"] == 1.0


def test_the_sweeps_read_the_probabilities_as_served(cascade, rows):
    """The sweep's and the head-alone figures use each query's window and the cascade's priors, as serving does."""
    skewed = cascade.with_priors({"default": 0.85, "code": 0.05, "creative": 0.05, "math": 0.05})
    texts = list(rows.texts) + [" " * 3_000 + "how do I sort a list in python" + "\u200b" * 3_000]
    served = [d.confidence for d in (skewed.classify(t) for t in texts) if d.stage == "embedding"]
    proba = skewed.head_proba("embedding", texts).max(axis=1)
    stages = [skewed.classify(t).stage for t in texts]
    assert served == pytest.approx([p for p, s in zip(proba, stages, strict=True) if s == "embedding"])
    assert not (proba == pytest.approx(cascade.head_proba("embedding", texts).max(axis=1)))  # the priors count


def test_sweep_files_keep_every_dot_of_their_name(cascade, rows, tmp_path):
    report = evaluate_cascade(cascade, rows, progress=False)
    saved = save_sweeps(report, tmp_path / "eval.v2")
    assert saved.metrics["sweep"]["csv"] == str(tmp_path / "eval.v2.csv")
    assert saved.metrics["sweep"]["png"] == str(tmp_path / "eval.v2.png")
    named = save_sweeps(report, tmp_path / "named.csv")  # `--sweep out/sweep.csv` names the CSV itself
    assert named.metrics["sweep"]["csv"] == str(tmp_path / "named.csv")
    assert named.metrics["sweep"]["png"] == str(tmp_path / "named.png")


def test_macro_f1_averages_only_the_labels_the_data_has_or_the_model_predicts(cascade):
    """Rows of two labels, all right: macro-F1 1.0, not 0.5 from two labels the data lacks counted as zeros."""
    texts = ("integrate x^2 from 0 to 3", "what is 17 times 23", "fix this python KeyError", "write a SQL join query")
    rows = Dataset(texts, ("math", "math", "code", "code"), None)
    report = evaluate_cascade(cascade, rows, llm_mode="off", progress=False)
    assert [d.label for d in report.decisions] == list(rows.labels)  # the premise: every row right
    assert report.metrics["macro_f1"] == 1.0
    assert set(report.metrics["per_label"]) == set(cascade.labels)  # the table still lists every label
