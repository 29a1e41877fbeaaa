"""What the CLI checks before any work: where a model, an encoder or an output may be written, options that only
one mode reads, calibration rows; and an unexpected error never prints its message (it may quote a secret)."""

from __future__ import annotations

import json
import os
import re

import pytest
import typer

from classifier.errors import ModelFileError
from classifier.model_files import KIND, check_model_out
from routing import cli
from tests.conftest import run_cli

ROWS = [
    {"text": t, "label": label}
    for label, texts in {
        "math": ["integrate x^2", "solve 2x = 4", "what is 7 times 8"],
        "code": ["reverse a list in python", "fix my sql join", "write a bash loop"],
    }.items()
    for t in texts
]


def run(args: list[str]) -> tuple[int, str]:
    """`taskrouter ARGS` in this process: (exit status, stderr)."""
    code, _, err = run_cli(args)
    return code, err


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "queries.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return path


def model_folder(path, files):
    """A new folder holding `files` (one byte each)."""
    path.mkdir()
    for name in files:
        (path / name).write_bytes(b"x")
    return path


# -- where a model may be written ------------------------------------------------------------------------------
def test_a_new_or_empty_folder_or_a_model_folder_takes_a_model(tmp_path):
    assert check_model_out(tmp_path / "new") == tmp_path / "new"
    assert check_model_out(tmp_path / "a" / "b")  # made when saved
    (tmp_path / "empty").mkdir()
    assert check_model_out(tmp_path / "empty")
    model = model_folder(tmp_path / "model", ["weights.npz"])
    (model / "manifest.json").write_text(json.dumps({"kind": KIND, "files": {"weights.npz": {}}}))
    (model / "notes").mkdir()  # folders inside a model folder stay in it
    assert check_model_out(model) == model


@pytest.mark.parametrize(
    ("files", "manifest", "message"),
    [
        (["queries.jsonl", "NOTES.md"], None, "holds files and no taskrouter manifest.json"),
        (
            ["weights.npz", "queries.jsonl"],
            {"kind": KIND, "files": {"weights.npz": {}}},
            "does not list.*queries.jsonl",
        ),
        (["weights.npz"], "{not json", "no taskrouter manifest.json.*manifest.json, weights.npz"),
    ],
)
def test_a_folder_whose_files_a_save_would_delete_is_refused(tmp_path, files, manifest, message):
    folder = model_folder(tmp_path / "work", files)
    if manifest is not None:
        (folder / "manifest.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    with pytest.raises(ModelFileError, match=message):
        check_model_out(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted({*files, *(["manifest.json"] if manifest else [])})


def test_a_file_the_current_folder_or_a_path_under_a_file_is_refused(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ModelFileError, match="not a directory"):
        check_model_out(tmp_path / "afile")
    with pytest.raises(ModelFileError, match="cannot be made"):
        check_model_out(tmp_path / "afile" / "sub")
    monkeypatch.chdir(tmp_path)
    for where in (".", str(tmp_path), str(tmp_path.parent)):
        with pytest.raises(ModelFileError, match="folder this process runs in"):
            check_model_out(where)


def test_train_refuses_a_folder_of_other_files_before_reading_the_data(tmp_path, data):
    (tmp_path / "NOTES.md").write_text("mine")
    code, err = run(["train", "--data", str(data), "--out", str(tmp_path)])
    assert code == 1 and "holds files and no taskrouter manifest.json" in err
    assert (tmp_path / "NOTES.md").read_text() == "mine" and data.is_file()


def test_tune_encoder_refuses_a_folder_that_is_no_tuned_encoder(tmp_path, data):
    pytest.importorskip("torch")
    model = model_folder(tmp_path / "model", ["weights.npz", "manifest.json"])
    code, err = run(["tune-encoder", "--data", str(data), "--out", str(model), "--no-install", "--epochs", "1"])
    assert code == 1 and "is no tuned encoder" in err
    assert sorted(p.name for p in model.iterdir()) == ["manifest.json", "weights.npz"]


# -- options and outputs, before any work ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--answers", "{data}"], "--answers is read only with --llm labels"),
        (["--config", "{data}"], "--config is read only with --llm config"),
        (["--no-static", "--static-threshold", "0.5"], "--static-threshold needs the static stage"),
        (["--sweep", "{tmp}/s", "--out-dir", "{tmp}/d"], "--sweep and --out-dir"),
        (["--errors", "{data}"], "--errors .*is an input of this command"),
        (["--json", "{tmp}"], "--json .*is a folder"),
        (["--json", "{tmp}/no-such-folder/m.json"], "--json .*no-such-folder is not a folder"),
        (["--sweep", "{tmp}/queries"], "the sweep's .*queries.csv: is an input"),  # it would replace the data
        (["--llm", "config"], "--llm config needs --config FILE"),  # run() unsets TASKROUTER_CONFIG
    ],
)
def test_evaluate_refuses_before_it_reads_anything(tmp_path, data, extra, message):
    pytest.importorskip("sklearn")
    if "{tmp}/queries" in extra:
        data = data.rename(tmp_path / "queries.csv")
        data.write_text("text,label\nintegrate x^2,math\nreverse a list,code\n")
    args = [a.format(data=data, tmp=tmp_path) for a in extra]
    before = data.read_bytes()
    code, err = run(["evaluate", "--data", str(data), "--model", str(tmp_path / "no-model"), *args])
    assert code == 1, err
    assert err.strip().splitlines()[-1].startswith("error: ") and re.search(message, err), err
    assert data.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--select-c", "1", "--select-c", "inf"], "every C must be finite"),
        (["--no-static", "--static-features"], "--static-features needs the static stage"),
        (["--no-static", "--no-static-features", "--static-c", "1"], "--static-c needs the static stage"),
        (["--static-c", "0"], "--static-c"),
    ],
)
def test_train_refuses_conflicting_or_infinite_options(tmp_path, data, args, message):
    pytest.importorskip("sklearn")
    calibration = ["--calibration-data", str(data)] if "--select-c" in args else []
    code, err = run(["train", "--data", str(data), "--out", str(tmp_path / "m"), *calibration, *args])
    assert code == 1 and message in err, err


# -- calibration rows ------------------------------------------------------------------------------------------------
def calibration_file(tmp_path, rows):
    path = tmp_path / "calibration.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_calibration_rows_must_share_the_training_labels(tmp_path, data):
    pytest.importorskip("sklearn")
    path = calibration_file(tmp_path, [{"text": "what is love", "label": "zzz"}])
    code, err = run(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--calibration-data", str(path)])
    assert code == 1 and "unknown label 'zzz'" in err, err
    assert not (tmp_path / "m").exists()


def test_calibration_from_more_sources_than_folds_can_group_is_refused_before_training(tmp_path, data):
    pytest.importorskip("sklearn")
    rows = [{"text": f"query {i}", "label": "math", "source": f"s{i}"} for i in range(13)]
    path = calibration_file(tmp_path, rows)
    code, err = run(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--calibration-data", str(path)])
    assert code == 1 and "13 distinct sources" in err and "at most 12" in err, err
    assert not (tmp_path / "m").exists()


def test_calibration_rows_seen_in_training_are_named(tmp_path, data, capsys):
    from classifier.data import load_dataset

    path = calibration_file(tmp_path, [{"text": "Integrate x^2 ", "label": "math"}, {"text": "new", "label": "code"}])
    cli._check_calibration(load_dataset(path), load_dataset(data), path)
    assert "1 rows of" in capsys.readouterr().err


# -- an unexpected error -----------------------------------------------------------------------------------------
def test_an_unexpected_error_shows_where_but_not_its_message(monkeypatch):
    broken = typer.Typer()

    @broken.command()
    def connect() -> None:
        password = os.environ["TR_TEST_PASSWORD"]  # a secret is a value at run time, never in the source
        raise ValueError(f"invalid literal for int() with base 10: {password!r}")

    monkeypatch.setenv("TR_TEST_PASSWORD", "s3cretPW")
    monkeypatch.setattr(cli, "app", broken)
    monkeypatch.delenv(cli.DEBUG_VARIABLE, raising=False)
    code, err = run([])
    assert code == 1 and "s3cretPW" not in err
    assert "builtins.ValueError (message withheld" in err and "in connect" in err
    monkeypatch.setenv(cli.DEBUG_VARIABLE, "1")
    with pytest.raises(ValueError, match="s3cretPW"):
        run([])


def test_a_database_url_with_a_password_where_the_port_goes_is_one_line_without_it():
    pytest.importorskip("sqlalchemy")
    code, err = run(["report", "--db", "postgresql://admin:s3cretPW/appdb"])
    assert code == 1 and "s3cretPW" not in err
    assert err.strip().splitlines()[-1].startswith("error: "), err


def test_a_folder_with_another_programs_manifest_is_no_model_folder(tmp_path):
    folder = model_folder(tmp_path / "app", ["notes.txt"])
    (folder / "manifest.json").write_text(json.dumps({"name": "my app", "files": {"notes.txt": 1}}))
    with pytest.raises(ModelFileError, match="no taskrouter manifest.json.*manifest.json, notes.txt"):
        check_model_out(folder)


def test_train_cascade_checks_out_before_training(tmp_path):
    pytest.importorskip("sklearn")
    from classifier.data import Dataset
    from classifier.training.train import train_cascade

    (tmp_path / "notes.txt").write_text("mine")
    texts = tuple(r["text"] for r in ROWS)
    with pytest.raises(ModelFileError, match="holds files"):
        train_cascade(Dataset(texts, tuple(r["label"] for r in ROWS), "rows"), out=tmp_path)


def test_convert_refuses_what_its_rewrite_would_drop(tmp_path, monkeypatch):
    import shutil

    from classifier.model_files import convert
    from tests.conftest import ROOT

    model = tmp_path / "m"
    shutil.copytree(ROOT / "tests" / "fixtures" / "model-2026-11", model)
    (model / "data-link").symlink_to(tmp_path)
    with pytest.raises(ModelFileError, match="does not list.*data-link"):
        convert(model)
    (model / "data-link").unlink()
    monkeypatch.chdir(model)
    with pytest.raises(ModelFileError, match="folder this process runs in"):
        convert(".")
    assert sorted(p.name for p in model.iterdir()) == sorted(
        p.name for p in (ROOT / "tests" / "fixtures" / "model-2026-11").iterdir()
    )


def test_evaluation_data_keeps_its_repeats_and_disagreements(tmp_path):
    from classifier.data import load_dataset

    path = tmp_path / "traffic.jsonl"
    rows = [("what is 2+2?", "math"), ("what is 2+2?", "math"), ("What is 2+2?", "default")]
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    kept = load_dataset(path, unique=False)
    assert list(zip(kept.texts, kept.labels, strict=True)) == rows
    with pytest.raises(Exception, match="line 1 has label 'default' here and 'math' there"):
        load_dataset(path)


@pytest.mark.parametrize(
    ("files", "args", "message"),
    [
        (["held.v2.csv"], ["--sweep", "{tmp}/held.v2"], "the sweep's .*held.v2.csv: is an input"),
        ([], ["--json", "{tmp}/a.json", "--errors", "{tmp}/a.json"], "two outputs name the same file"),
        ([], ["--json", "{tmp}/m.csv", "--sweep", "{tmp}/m"], "two outputs name the same file"),
    ],
)
def test_sweep_files_and_outputs_are_checked_by_the_names_written(tmp_path, files, args, message):
    pytest.importorskip("sklearn")
    data = tmp_path / (files[0] if files else "data.csv")
    data.write_text("text,label\nintegrate x^2,math\nreverse a list,code\n")
    code, err = run(
        ["evaluate", "--data", str(data), "--model", str(tmp_path / "no-model")]
        + [a.format(tmp=tmp_path) for a in args]
    )
    assert code == 1 and re.search(message, err), err


def test_a_fault_with_no_file_name_is_withheld_too(monkeypatch):
    broken = typer.Typer()

    @broken.command()
    def connect() -> None:
        url = os.environ["TR_TEST_URL"]
        raise ConnectionError(f"cannot reach {url}")

    monkeypatch.setenv("TR_TEST_URL", "https://user:s3cretPW@telemetry.example/db")
    monkeypatch.setattr(cli, "app", broken)
    monkeypatch.delenv(cli.DEBUG_VARIABLE, raising=False)
    code, err = run([])
    assert code == 1 and "s3cretPW" not in err and "builtins.ConnectionError (message withheld" in err


def test_classify_names_the_empty_query_by_its_place():
    code, err = run(["classify", "integrate x^2", ""])
    assert code == 1 and "error: query 2: must not be empty" in err, err
    code, err = run(["classify", " "])
    assert code == 1 and "error: query: must not be empty" in err, err


def test_compare_weighs_fixed_against_broken_by_mcnemars_exact_test():
    pytest.importorskip("scipy")
    from classifier.training.source_folds import mcnemar_p

    assert mcnemar_p(8, 4) == pytest.approx(0.3877, abs=1e-4)  # the README's example: noise
    assert mcnemar_p(4, 8) == mcnemar_p(8, 4)  # two-sided
    assert mcnemar_p(12, 0) < 0.001 and mcnemar_p(0, 0) == 1.0


# -- report and review export on a telemetry database ----------------------------------------------------------
def telemetry_db(path, times):
    """A SQLite telemetry database holding one successful request (with its text) at each of `times`."""
    from routing.telemetry import TelemetryStore

    store = TelemetryStore(f"sqlite:///{path}")
    for i, ts in enumerate(times):
        store.record(
            {"request_id": f"r{i}", "ts": ts, "label": "code", "stage": "embedding", "confidence": 0.5,
             "escalated": True, "held_back": False, "requested_pool": "fast", "served_pool": "fast",
             "deployment": "d", "fallback": False, "input_tokens": 1000, "output_tokens": 500, "cost_usd": 0.0003,
             "latency_s": 0.5, "status": "success", "error_class": None, "query_text": f"private query {i}"}
        )  # fmt: skip
    return f"sqlite:///{path}"


def test_report_writes_its_page_and_json_private_to_their_owner(tmp_path):
    """Both hold stored query texts (the escalated sample): 0600, as `review export` writes, even over a file
    that was readable by all."""
    pytest.importorskip("matplotlib")
    from datetime import UTC, datetime

    url = telemetry_db(tmp_path / "events.db", [datetime(2025, 1, 1, 10, tzinfo=UTC)])
    page, numbers = tmp_path / "report.html", tmp_path / "report.json"
    for path in (page, numbers):
        path.write_text("old")
        path.chmod(0o644)
    code, err = run(["report", "--db", url, "--out", str(page), "--json", str(numbers)])
    assert code == 0, err
    assert "private query 0" in page.read_text() and "private query 0" in numbers.read_text()
    assert [oct(path.stat().st_mode & 0o777) for path in (page, numbers)] == ["0o600", "0o600"]


@pytest.mark.parametrize(
    ("since", "requests"),
    [("2025-01-01T10:30+05:00", 1), ("2025-01-01T05:30", 1), ("2025-01-01", 2), ("2025-01-01T06:30Z", 0)],
)
def test_report_since_keeps_the_offset_it_is_given(tmp_path, since, requests):
    """10:30 at +05:00 is 05:30 UTC; the offset was dropped (read as 10:30 UTC, after both requests)."""
    pytest.importorskip("matplotlib")
    from datetime import UTC, datetime

    url = telemetry_db(tmp_path / "events.db", [datetime(2025, 1, 1, h, tzinfo=UTC) for h in (5, 6)])
    out, numbers = tmp_path / "report.html", tmp_path / "report.json"
    code, err = run(["report", "--db", url, "--since", since, "--out", str(out), "--json", str(numbers)])
    assert code == 0, err
    assert json.loads(numbers.read_text())["requests"] == requests


def test_report_reads_prices_from_a_proxy_config_without_its_secrets(tmp_path, monkeypatch):
    """The proxy's own config.yaml (litellm_settings.callbacks, general_settings) was refused, and an unset
    `os.environ/...` key failed the report, which calls no provider."""
    pytest.importorskip("matplotlib")
    import yaml

    from tests.conftest import ROOT

    for name in ("UPSTREAM_API_BASE", "UPSTREAM_API_KEY", "LITELLM_MASTER_KEY"):
        monkeypatch.delenv(name, raising=False)
    from datetime import UTC, datetime

    config = yaml.safe_load((ROOT / "examples" / "proxy" / "config.yaml").read_text())
    for d in config["model_list"]:
        d["litellm_params"].update(input_cost_per_token=3e-6, output_cost_per_token=1.2e-5)
    url = telemetry_db(tmp_path / "events.db", [datetime(2025, 1, 1, tzinfo=UTC)])
    config["taskrouter"]["telemetry"] = {"url": url}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    numbers = tmp_path / "report.json"
    args = ["report", "--config", str(tmp_path / "config.yaml"), "--baseline-pool", "capable"]
    code, err = run([*args, "--out", str(tmp_path / "r.html"), "--json", str(numbers)])
    assert code == 0, err
    assert json.loads(numbers.read_text())["baseline_cost_usd"] == pytest.approx(1000 * 3e-6 + 500 * 1.2e-5)


@pytest.mark.parametrize(
    "command",
    [
        ["report", "--out", "r.html", "--db"],
        ["review", "export", "--out", "r.jsonl", "--db"],
        ["priors", "--from-telemetry"],
    ],
    ids=["report", "review-export", "priors"],
)
def test_a_telemetry_url_that_is_no_url_is_named_by_its_option(tmp_path, monkeypatch, command):
    """It was named by the config field `taskrouter.telemetry.url`, which the command line never gave."""
    if command[0] == "report":
        pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    code, err = run([*command, "events.db"])
    assert code == 1 and err.strip() == f"error: {command[-1]}: must be a database URL such as sqlite:///events.db"


def test_a_telemetry_url_from_a_config_file_is_named_with_the_file(tmp_path):
    pytest.importorskip("matplotlib")
    config = tmp_path / "routing.yaml"
    config.write_text(
        "model_list: [{model_name: fast, litellm_params: {model: openai/fast}}]\n"
        "taskrouter: {default_pool: fast, telemetry: {url: events.db}}\n"
    )
    code, err = run(["report", "--config", str(config), "--out", str(tmp_path / "r.html")])
    assert code == 1
    assert (
        err.strip()
        == f"error: taskrouter.telemetry.url (in {config}): must be a database URL such as sqlite:///events.db"
    )
