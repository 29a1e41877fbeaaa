"""A user's own labels from a few rows: a threshold that still means something, warnings, a learning curve."""

import pytest
import yaml

from classifier import Cascade
from classifier.data import load_dataset
from classifier.training.train import MIN_ROWS_PER_LABEL, _shrunk, train_cascade
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = load_dataset(ROOT / "tests/data/three_labels.csv")  # 42 rows: legal, sql, chitchat
    return train_cascade(data, out=tmp_path_factory.mktemp("three") / "m", progress=False)


def test_the_threshold_is_strictly_between_chance_and_one(trained):
    cascade, report = trained
    assert 1 / 3 < report.threshold < 0.99 + 1e-9
    assert cascade.threshold == pytest.approx(report.threshold)


def test_small_labels_are_named_with_how_many_rows_they_need(trained):
    _, report = trained
    assert report.few_rows == {label: MIN_ROWS_PER_LABEL - 14 for label in ("chitchat", "legal", "sql")}


def test_the_learning_curve_covers_the_shares(trained):
    _, report = trained
    assert report.learning_curve is not None and set(report.learning_curve) <= {"0.25", "0.5", "1.0"}
    assert "1.0" in report.learning_curve and all(0 <= v <= 1 for v in report.learning_curve.values())


def test_shrinking_moves_few_rows_far_and_many_rows_little():
    assert _shrunk(1.0, 17, 3) == pytest.approx((17 * 1.0 + 50 * 2 / 3) / 67)
    assert abs(_shrunk(0.84, 2300, 4) - 0.84) < 0.005
    assert _shrunk(0.0, 0, 2) == pytest.approx(0.75)  # nothing held out: the default
    assert 0.5 + 0.01 <= _shrunk(0.2, 10_000, 2) <= 0.99  # never at or below chance


def test_a_query_that_fits_no_label_goes_to_the_fallback_label(trained, tmp_path_factory):
    _, report = trained
    assert report.scope is not None and -1 < report.scope.threshold < 1
    directory = next(tmp_path_factory.getbasetemp().glob("three*")) / "m"
    cascade = Cascade.load(directory, fallback_label="default")
    assert cascade.fallback_label == "default"
    d = cascade.classify("Integrate x^2 sin x")
    assert (d.label, d.stage) == ("default", "scope") and "out of scope" in d.trail[-1].note
    inside = cascade.classify("Is a verbal agreement legally binding in California?")
    assert inside.label == "legal" and inside.stage_result("scope").note == "in scope"


def test_without_a_fallback_label_the_cascade_is_unchanged(trained, tmp_path_factory):
    directory = next(tmp_path_factory.getbasetemp().glob("three*")) / "m"
    assert Cascade.load(directory).classify("Integrate x^2 sin x").label in {"legal", "sql", "chitchat"}


def test_route_sends_the_out_of_scope_query_to_the_fallback_pool(trained, tmp_path_factory):
    """The user's path: their model and a config naming a fallback label, then `taskrouter route`."""
    from typer.testing import CliRunner

    from routing.cli import app

    directory = next(tmp_path_factory.getbasetemp().glob("three*")) / "m"
    demo = yaml.safe_load((ROOT / "routing/configs/demo.yaml").read_text(encoding="utf-8"))
    demo["taskrouter"] = {
        "pools": {"legal": "capable", "sql": "code", "chitchat": "fast"},
        "default_pool": "fast",
        "classifier": {"model": str(directory), "fallback_label": "default"},
    }
    config = tmp_path_factory.mktemp("config") / "my.yaml"
    config.write_text(yaml.safe_dump(demo), encoding="utf-8")
    runner = CliRunner()
    out = runner.invoke(app, ["route", "--config", str(config), "Integrate x^2 sin x"])
    assert out.exit_code == 0, out.output
    assert "label=default stage=scope" in out.output and "pool=fast" in out.output
    out = runner.invoke(app, ["route", "--config", str(config), "How do I join two tables in SQL?"])
    assert "label=sql" in out.output and "pool=code" in out.output


def test_a_model_without_a_scope_threshold_is_refused_naming_the_field(trained, tmp_path_factory):
    import json
    import shutil

    from classifier.errors import ConfigError
    from classifier.model_files import MANIFEST
    from routing import TaskRouter

    src = next(tmp_path_factory.getbasetemp().glob("three*")) / "m"
    old = tmp_path_factory.mktemp("old") / "m"
    shutil.copytree(src, old)
    manifest = json.loads((old / MANIFEST).read_text(encoding="utf-8"))
    manifest["cascade"]["scope"] = None  # as a model trained before scope existed
    (old / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    demo = yaml.safe_load((ROOT / "routing/configs/demo.yaml").read_text(encoding="utf-8"))
    demo["taskrouter"] = {"pools": {}, "default_pool": "fast", "classifier": {"model": str(old), "fallback_label": "x"}}
    with pytest.raises(ConfigError, match="fallback_label"):
        TaskRouter(demo)


def test_train_prints_the_scope_and_sums_up_rules_for_other_labels(tmp_path):
    from typer.testing import CliRunner

    from classifier.serving.keywords import load_rules
    from routing.cli import app

    data = ROOT / "tests/data/three_labels.csv"
    out = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "m")])
    assert out.exit_code == 0, out.output
    assert "scope threshold" in out.output and "fallback_label" in out.output
    foreign = [r for r in load_rules() if r.label not in set(load_dataset(data).labels)]  # of the shipped rules
    labels = ", ".join(sorted({r.label for r in foreign}))
    assert foreign and f"{len(foreign)} off because their labels are not in the data: {labels}" in out.output
    assert "off: code_fence" not in out.output  # one line for all of them, not one per rule
    assert out.output.count("warning: label") == 3


CALIBRATION_ROWS = [
    ("My neighbour's tree fell on my fence, who pays?", "legal"),
    ("Do I need a lawyer to write a will?", "legal"),
    ("Can I be evicted without a written notice?", "legal"),
    ("Is it legal to record a phone call without consent?", "legal"),
    ("How do I count distinct customers per month in Postgres?", "sql"),
    ("Why is my LEFT JOIN returning duplicate rows?", "sql"),
    ("Write a query that finds the second highest salary", "sql"),
    ("What index speeds up WHERE created_at > now() - interval '1 day'?", "sql"),
    ("Good morning! Did you sleep well?", "chitchat"),
    ("What's your favourite colour?", "chitchat"),
    ("I'm bored, talk to me", "chitchat"),
    ("Haha that's funny, tell me more", "chitchat"),
]


def test_thresholds_read_on_rows_from_other_sources(trained, tmp_path):
    from classifier.data import Dataset

    _, plain = trained
    calibration = Dataset(tuple(t for t, _ in CALIBRATION_ROWS), tuple(y for _, y in CALIBRATION_ROWS))
    data = load_dataset(ROOT / "tests/data/three_labels.csv")
    cascade, report = train_cascade(data, calibration=calibration, max_escalation=0.25, progress=False)
    assert report.static_threshold is not None and plain.static_threshold is not None
    assert report.static_threshold >= plain.static_threshold  # raised where other sources need it, never lowered
    assert report.target == {"max_escalation_out_of_source": 0.25}
    decisions = cascade.classify_batch([t for t, _ in CALIBRATION_ROWS])
    assert sum(d.escalated for d in decisions) <= 0.25 * len(decisions)  # the budget holds on those rows


def test_train_says_why_each_rule_of_the_datas_labels_is_off(tmp_path):
    """A rule switched off at precision 1.000 looked like a bug: the line says it had too few hits."""
    from typer.testing import CliRunner

    from routing.cli import app

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - {name: california, label: legal, phrases: [california]}\n"  # one hit, right: too few
        "  - {name: the_word_the, label: legal, phrases: [the]}\n"  # many hits, most of them not legal
        "  - {name: sql_off, label: sql, phrases: [sql], enabled: false}\n",  # right every time, but off by hand
        encoding="utf-8",
    )
    data = ROOT / "tests/data/three_labels.csv"
    out = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "m"), "--rules", str(rules)])
    assert out.exit_code == 0, out.output
    lines = {line.split()[1]: line for line in out.output.splitlines() if line.strip().startswith("off: ")}
    assert "precision=1.000" in lines["california"] and "(fewer than 3 hits)" in lines["california"]
    assert "(precision below 0.98)" in lines["the_word_the"]
    assert "(off in the rules file)" in lines["sql_off"]
