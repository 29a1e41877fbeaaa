"""What the CLI prints: labels of one's own whole in `evaluate`'s tables, training's few-rows warning once, help
that shows no type after a flag, `model upgrade` saying what it did, and an unknown `--by` as click's usage error."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil

import pytest
import typer.main

from routing import cli
from tests.conftest import ROOT, run_cli


def run(args: list[str]) -> tuple[int, str, str]:
    """`taskrouter ARGS` in this process, 200 columns wide: (exit status, stdout, stderr)."""
    return run_cli(args, COLUMNS="200")


# -- evaluate's tables -----------------------------------------------------------------------------------------------
def metrics(labels: list[str]) -> dict:
    """What `evaluate_cascade` reports, for `labels`: each label's queries all right but one per row."""
    k = len(labels)
    share = {"accuracy": 0.9, "macro_f1": 0.9}
    return {
        "n": 10 * k,
        "llm_mode": "off",
        "threshold": 0.5,
        **share,
        "embedding_only": share,
        "latency_ms": {"p50": 1.0, "p95": 2.0},
        "per_label": {x: {"precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 10} for x in labels},
        "confusion": {"labels": labels, "matrix": [[9 if i == j else 1 for j in range(k)] for i in range(k)]},
        "stages": {"embedding": {"coverage": 1.0, "accuracy": 0.9}},
        "escalation_rate": 0.0,
        "escalation_precision": None,
        "escalation_recall": None,
        "residual_error": 0.1,
    }


def test_evaluate_shows_long_labels_whole_with_their_columns_aligned():
    pytest.importorskip("sklearn")
    from classifier.training.evaluate import format_report

    labels = ["billing-and-invoices", "technical-support-escalation", "sales"]
    lines = format_report(metrics(labels)).splitlines()
    header = lines[lines.index("confusion (rows: true, columns: predicted)") + 1]
    assert header.split() == labels  # none cut
    ends = [m.end() for m in re.finditer(r"\S+", header)]
    for label, line in zip(labels, lines[lines.index(header) + 1 :], strict=False):
        assert line.startswith(label + " ")
        assert [m.end() for m in re.finditer(r"\S+", line)][1:] == ends  # each count under its label's end
    table = [line for line in lines if line.split()[:1] in (["label"], *([x] for x in labels))][:4]
    assert [line.split()[0] for line in table] == ["label", *labels]
    assert len({line.index(line.split()[1]) + len(line.split()[1]) for line in table}) == 1  # precision column


# -- train's few-rows warning ----------------------------------------------------------------------------------------
def test_train_names_a_label_with_few_rows_once(tmp_path, monkeypatch):
    """The library logs it (to whoever reads its log); the command says it once, in its summary."""
    pytest.importorskip("sklearn")
    from classifier.training import train
    from classifier.training.train import MIN_ROWS_PER_LABEL, TrainingReport

    counts = {"math": 3, "code": 40}

    def train_cascade(data, **options):  # what train_cascade reports and logs, without the embedding model
        report = TrainingReport(len(data.texts), counts, 0.9, 0.9, 0.5, {"max_error": 0.03}, rules=[])
        logging.getLogger("taskrouter.train").warning(  # as train_cascade words it
            "few rows: %s (each label needs at least %d for its confidences to mean much)",
            ", ".join(f"{k} has {report.label_counts[k]}, add {more}" for k, more in report.few_rows.items()),
            MIN_ROWS_PER_LABEL,
            extra={train.FEW_ROWS_RECORD: report.few_rows},
        )
        return None, report

    monkeypatch.setattr(train, "train_cascade", train_cascade)
    data = tmp_path / "queries.csv"
    data.write_text("text,label\nintegrate x^2,math\nsolve 2x = 4,math\nreverse a list,code\nfix my join,code\n")
    code, out, err = run(["train", "--data", str(data), "--out", str(tmp_path / "m")])
    assert code == 0, err
    said = [line for line in (out + err).splitlines() if "math" in line and "rows" in line]
    assert said == [f"warning: label 'math' has 3 rows; add at least {MIN_ROWS_PER_LABEL - 3} more"], out + err
    assert said[0] in err.splitlines()  # a warning, on stderr as the command's others
    assert cli.FEW_ROWS_RECORD == train.FEW_ROWS_RECORD  # the command line names the record without importing training


# -- help ------------------------------------------------------------------------------------------------------------
def commands() -> list[list[str]]:
    """Every command's words, groups included: [], ["train"], ["model"], ["model", "upgrade"], ..."""
    found: list[list[str]] = []

    def walk(command, words):
        found.append(words)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*words, name])

    walk(typer.main.get_command(cli.app), [])
    return found


@pytest.mark.parametrize("words", commands(), ids=lambda words: " ".join(words) or "taskrouter")
def test_help_shows_a_value_only_for_options_that_take_one(words):
    code, out, _ = run([*words, "--help"])
    assert code == 0 and "Usage: taskrouter" in out
    assert "<bool>" not in out  # a flag takes no value
    options = [line for line in out.splitlines() if re.match(r"[│ ]*(\* +)?--\w", line)]
    assert options and not [line for line in options if "<list[" in line]  # a repeated option takes one each time
    if words == ["evaluate"]:
        assert re.search(r"--by +<source>", out)


# -- model upgrade ---------------------------------------------------------------------------------------------------
def test_model_upgrade_says_what_it_did_and_leaves_a_current_model_alone(tmp_path):
    fixtures = ROOT / "tests" / "fixtures"
    model = tmp_path / "m"
    shutil.copytree(fixtures / "model-2026-11", model)  # format 3, the current one
    before = {p.name: os.stat(p) for p in [model, *model.iterdir()]}
    code, out, err = run(["model", "upgrade", str(model)])
    assert code == 0, err
    assert out.strip() == f"{model}: already in the current format (3); nothing changed"
    after = {p.name: os.stat(p) for p in [model, *model.iterdir()]}
    assert {k: (s.st_ino, s.st_mtime_ns) for k, s in after.items()} == {
        k: (s.st_ino, s.st_mtime_ns) for k, s in before.items()
    }
    shutil.copy(fixtures / "model-2026-11-manifest-v2.json", model / "manifest.json")
    code, out, err = run(["model", "upgrade", str(model)])
    assert code == 0, err
    assert "upgraded from format 2 to format 3" in out and "no retraining" in out
    assert json.loads((model / "manifest.json").read_text())["format_version"] == 3


# -- --by --------------------------------------------------------------------------------------------------------------
def test_an_unknown_by_is_a_usage_error_and_a_missing_source_field_a_data_error(tmp_path):
    """README: exit 2 for click's usage errors (a value not among an option's choices), 1 for a problem with the
    data (`--by source` on data without a source field)."""
    pytest.importorskip("sklearn")
    data = tmp_path / "queries.jsonl"
    data.write_text(json.dumps({"text": "integrate x^2", "label": "math"}) + "\n")
    code, _, err = run(["evaluate", "--data", str(data), "--by", "label"])
    assert code == 2, err
    assert err.strip().splitlines()[-1].startswith("Error: ") and "'--by'" in err and "'source'" in err, err
    code, _, err = run(["evaluate", "--data", str(data), "--by", "source"])
    assert code == 1, err
    assert err.strip().splitlines()[-1] == f"error: --by source: {data} has no 'source' field", err
