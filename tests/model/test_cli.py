"""The `taskrouter` command as a user runs it: a subprocess, exit codes, stdout, stderr."""

import json
import re
import subprocess
import sys
import tomllib

import pytest

from tests.conftest import ROOT
from tests.integration.servers import free_port


def run(*args, cwd=ROOT, stdin=""):
    return subprocess.run(
        [sys.executable, "-m", "routing.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        input=stdin,
    )


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory):
    """A user-chosen label set in CSV."""
    rows = ["text,label"]
    for label, texts in {
        "billing": [
            "I was charged twice",
            "refund my last invoice",
            "update my credit card",
            "why is my bill higher",
            "cancel my subscription payment",
            "the invoice has the wrong VAT number",
        ],
        "tech": [
            "the app crashes at login",
            "password reset email never arrives",
            "page shows error 502",
            "sync stopped working on android",
            "cannot upload files bigger than 2MB",
            "dark mode is broken",
        ],
        "sales": [
            "do you offer volume discounts",
            "I want a demo for my team",
            "pricing for 50 seats",
            "can we get an enterprise contract",
            "is there a nonprofit plan",
            "talk to someone about buying",
        ],
    }.items():
        rows += [f'"{t}",{label}' for t in texts]
    p = tmp_path_factory.mktemp("data") / "support.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


def test_train_and_evaluate_a_custom_label_set(tiny_csv, tmp_path):
    model = tmp_path / "model"
    r = run("train", "--data", tiny_csv, "--out", model, "--max-error", "0.1")
    assert r.returncode == 0, r.stderr
    assert "trained on 18 queries" in r.stdout and "escalation threshold" in r.stdout
    assert "MiniLM head: embedding 18 queries" in r.stderr and f"saving to {model}" in r.stderr  # training talks
    assert "few rows" not in r.stderr and r.stderr.count("warning: label") == 3  # 6 rows a label: said once each
    out = tmp_path / "eval.json"
    r = run("evaluate", "--data", tiny_csv, "--model", model, "--json", out, "--llm", "oracle")
    assert r.returncode == 0, r.stderr
    assert "macro-F1" in r.stdout and "upper bound" in r.stdout
    m = json.loads(out.read_text())
    for key in (
        "n",
        "accuracy",
        "macro_f1",
        "per_label",
        "confusion",
        "latency_ms",
        "stages",
        "escalation_rate",
        "escalation_precision",
        "escalation_recall",
        "residual_error",
        "llm_mode",
    ):
        assert key in m
    assert m["n"] == 18 and m["llm_mode"] == "oracle" and m["confusion"]["labels"] == ["billing", "sales", "tech"]
    assert set(m["per_label"]["tech"]) == {"precision", "recall", "f1", "support"}
    assert set(m["latency_ms"]) == {"p50", "p95"} and set(m["stages"]) == {"heuristic", "static", "embedding", "llm"}
    assert (tmp_path / "eval-sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "eval-sweep.csv").read_text().startswith("threshold,escalation_rate,accuracy,macro_f1")
    static = m["static_sweep"]["rows"]
    assert (tmp_path / "eval-sweep-static.csv").read_text().startswith("static_threshold,static_coverage,")
    coverage = [r["static_coverage"] for r in static]
    assert coverage == sorted(coverage, reverse=True) and all(0 <= c <= 1 for c in coverage)
    r = run("classify", "--model", model, "my card was charged two times")
    assert r.returncode == 0 and r.stdout.split()[0] == "billing"


def test_train_without_static_features(tiny_csv, tmp_path):
    model = tmp_path / "model"
    r = run("train", "--data", tiny_csv, "--out", model, "--max-error", "0.1", "--no-static-features")
    assert r.returncode == 0, r.stderr
    m = json.loads((model / "manifest.json").read_text())
    assert m["params"]["static_features"] is False and m["format_version"] == 3
    assert {h["stage"]: h["embedders"] for h in m["heads"]} == {
        "static": ["model2vec/all-MiniLM-L6-v2-static"],
        "embedding": ["sentence-transformers/all-MiniLM-L6-v2"],
    }


def test_evaluate_with_recorded_answers(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(
        '{"text": "integrate x^2 from 0 to 1", "label": "math"}\n'
        '{"text": "sort a list of dicts by key in python", "label": "code"}\n'
    )
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"text": "sort a list of dicts by key in python", "label": "code"}\n')
    r = run(
        "evaluate",
        "--data",
        data,
        "--json",
        tmp_path / "e.json",
        "--llm",
        "labels",
        "--answers",
        answers,
        "--threshold",
        "1.0",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "e.json").read_text())["llm_mode"] == "labels"


def test_evaluate_refuses_data_whose_labels_the_model_lacks(tiny_csv, tmp_path):
    r = run("evaluate", "--data", tiny_csv, "--json", tmp_path / "e.json")
    assert r.returncode == 1 and "none of its labels ['billing', 'sales', 'tech']" in r.stderr


def test_evaluate_warns_about_labels_the_model_lacks(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(
        '{"text": "integrate x^2 from 0 to 1", "label": "math"}\n{"text": "I was charged twice", "label": "billing"}\n'
    )
    r = run("evaluate", "--data", data, "--json", tmp_path / "e.json")
    assert r.returncode == 0, r.stderr
    assert "warning: 50.0% of" in r.stderr and "['billing']" in r.stderr


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["train", "--data", "missing.jsonl"], "missing.jsonl: file not found"),
        ('{"text": "a", "label": "x"}\n{"text": "b", "label": "x"\n', ["train", "--data", "{f}"], ":2: malformed JSON"),
        ('{"text": "", "label": "x"}\n', ["train", "--data", "{f}"], ":1: text: must not be empty"),
        ('{"text": 5, "label": "x"}\n', ["evaluate", "--data", "{f}"], ":1: text: must be a string"),
        (
            '{"text": "a", "label": "x"}\n{"text": "b", "label": "x"}\n{"text": "c", "label": "y"}\n',
            ["train", "--data", "{f}"],
            r"fewer than 2 examples: ['y']",
        ),
        ('{"text": "a", "label": "x"}\n', ["evaluate", "--data", "{f}", "--model", "nowhere"], "not a model directory"),
        (
            '{"text": "a", "label": "x"}\n',
            ["evaluate", "--data", "{f}", "--llm", "labels"],
            "--llm labels needs --answers",
        ),
    ],
    ids=["missing-file", "malformed-line", "empty-text", "non-string", "rare-label", "bad-model", "labels-no-file"],
)
def test_bad_input_is_one_line_and_exit_1(tmp_path, setup, args, message):
    f = tmp_path / "q.jsonl"
    if setup is not None:
        f.write_text(setup)
    r = run(*[a.replace("{f}", str(f)) for a in args], cwd=tmp_path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert message in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ")


def test_usage_errors_are_not_tracebacks():
    r = run("evaluate")
    assert r.returncode == 2 and "Missing option '--data'" in r.stderr and "Traceback" not in r.stderr


def test_compare_shows_what_a_retrain_changed(small_model_dir, tmp_path):
    rows = [json.loads(line) for line in (ROOT / "data" / "queries.jsonl").read_text().splitlines()[-40:]]
    data = tmp_path / "held.jsonl"
    data.write_text("\n".join(json.dumps({"text": r["text"], "label": r["label"]}) for r in rows) + "\n")
    out = tmp_path / "cmp.json"
    r = run("compare", small_model_dir, ROOT / "classifier" / "model", "--data", data, "--json", out)
    assert r.returncode == 0, r.stderr
    assert "predictions changed" in r.stdout and "macro_f1" in r.stdout
    m = json.loads(out.read_text())
    assert set(m) == {"old", "new", "fixed", "broken", "mcnemar_p", "changed"}
    assert m["new"]["accuracy"] - m["old"]["accuracy"] == pytest.approx((m["fixed"] - m["broken"]) / 40)
    assert [c["change"] for c in m["changed"]].count("fixed") == m["fixed"]
    texts = {r["text"]: r["label"] for r in rows}
    for c in m["changed"]:  # each names the query, its label, and both models' answers
        assert c["old"] != c["new"] and texts[c["text"]] == c["label"]
        assert (c["change"] == "fixed") == (c["new"] == c["label"])
    for kind in ("fixed", "broken"):  # the first ten of each are printed
        for c in [c for c in m["changed"] if c["change"] == kind][:10]:
            assert f"{c['old']} -> {c['new']}" in r.stdout


def test_route_and_complete_commands_with_the_demo_config():
    demo = ROOT / "routing" / "configs" / "demo.yaml"
    r = run("route", "--config", demo, "Prove that the square root of 2 is irrational.")
    assert r.returncode == 0, r.stderr
    assert "label=math" in r.stdout and "pool=math" in r.stdout
    query = "Write a limerick about a sleepy cat."
    routed = run("route", "--config", demo, query)
    r = run("complete", "--config", demo, query)
    assert r.returncode == 0, r.stderr
    assert "[demo creative pool] mock reply" in r.stdout and "served=creative" in r.stdout
    escalated = re.search(r"escalated=(True|False)", routed.stdout).group(0)
    assert escalated in r.stdout  # complete says whether the query was escalated, as route does


def test_classify_route_and_complete_read_the_query_from_stdin_or_a_file(tmp_path):
    demo = ROOT / "routing" / "configs" / "demo.yaml"
    r = run("classify", "-", "write a limerick about a sleepy cat", stdin="integrate x^2 from 0 to 1\n")
    assert r.returncode == 0, r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines()] == ["math", "creative"]
    assert r.stdout.splitlines()[0].endswith("  integrate x^2 from 0 to 1")  # stdin's text, not "-"
    poem = tmp_path / "poem.txt"
    poem.write_text("Write a limerick\nabout a sleepy cat.\n", encoding="utf-8")
    r = run("classify", "--file", poem)
    assert r.returncode == 0 and r.stdout.split()[0] == "creative" and "Write a limerick about" in r.stdout
    r = run("route", "--config", demo, "--file", poem)
    assert r.returncode == 0 and "label=creative" in r.stdout
    # Longer than one argument may be (Linux: 128 KiB): through "$(cat big.txt)" the shell refuses to start it.
    big = "Prove that the square root of 2 is irrational. " * 6_000
    r = run("route", "--config", demo, "-", stdin=big)
    assert r.returncode == 0 and "label=math" in r.stdout, r.stderr
    r = run("complete", "--config", demo, "-", stdin=big)
    assert r.returncode == 0, r.stderr
    assert "label=math" in r.stdout and "served=long-context" in r.stdout  # too long for the math pool's window


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["classify", "-"], "", "stdin: no query (it is empty or only whitespace)"),
        (["route", "-"], " \n\n", "stdin: no query (it is empty or only whitespace)"),
        (["complete", "--file", "missing.txt"], "", "--file missing.txt: file not found"),
        (["route", "--file", "."], "", "--file .: cannot read it (Is a directory)"),
        (["classify", "--file", "{empty}"], "", "empty.txt: no query (it is empty or only whitespace)"),
        (["route", "--file", "{latin1}"], "", "latin1.txt: not UTF-8 (byte 0xe9 at offset 3)"),
        (["route", "x", "--file", "{empty}"], "", "give the query as an argument or with --file, not both"),
        (["complete"], "", "no query: give one as an argument, '-' to read it from stdin, or --file PATH"),
        (["classify", "-", "-"], "a", "'-' (stdin) may be given only once"),
    ],
    ids=["empty-stdin", "blank-stdin", "missing-file", "directory", "empty-file", "not-utf8", "both", "none", "two-"],
)
def test_a_query_that_cannot_be_read_is_one_line_and_exit_1(tmp_path, args, stdin, message):
    (tmp_path / "empty.txt").write_text("\n")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    args = [
        a.replace("{empty}", str(tmp_path / "empty.txt")).replace("{latin1}", str(tmp_path / "latin1.txt"))
        for a in args
    ]
    r = run(*args, cwd=tmp_path, stdin=stdin)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.startswith("error: ") and message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"taskrouter {version}"


def test_evaluate_writes_the_sweep_only_where_asked(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    data = tmp_path / "d.jsonl"
    data.write_text(
        '{"text": "integrate x^2 from 0 to 1", "label": "math"}\n'
        '{"text": "sort a list of dicts by key in python", "label": "code"}\n'
    )
    r = run("evaluate", "--data", data, cwd=cwd)
    assert r.returncode == 0, r.stderr
    assert "sweep not written" in r.stdout and list(cwd.iterdir()) == []
    r = run("evaluate", "--data", data, "--out-dir", tmp_path / "ev", cwd=cwd)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["sweep-static.csv", "sweep.csv", "sweep.png"]
    assert list(cwd.iterdir()) == []


def test_evaluate_writes_its_misses_and_accuracy_by_source(tmp_path):
    data = tmp_path / "d.jsonl"
    rows = [
        {"text": "integrate x^2 from 0 to 1", "label": "math", "source": "a"},
        {"text": "sort a list of dicts by key in python", "label": "code", "source": "a"},
        {"text": "write a haiku about snow", "label": "math", "source": "b"},
    ]  # wrong on purpose
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = run(
        "evaluate", "--data", data, "--json", tmp_path / "e.json", "--errors", tmp_path / "miss.jsonl", "--by", "source"
    )
    assert r.returncode == 0, r.stderr
    misses = [json.loads(line) for line in (tmp_path / "miss.jsonl").read_text().splitlines()]
    assert [(m["text"], m["gold"], m["predicted"], m["source"]) for m in misses] == [
        ("write a haiku about snow", "math", "creative", "b")
    ]
    assert {"stage", "confidence", "escalated"} <= set(misses[0])
    by = json.loads((tmp_path / "e.json").read_text())["by_source"]
    assert by == {"a": {"n": 2, "accuracy": 1.0}, "b": {"n": 1, "accuracy": 0.0}}
    plain = tmp_path / "plain.jsonl"
    plain.write_text('{"text": "integrate x", "label": "math"}\n')
    r = run("evaluate", "--data", plain, "--json", tmp_path / "p.json", "--by", "source")
    assert r.returncode == 1 and "has no 'source' field" in r.stderr


def test_priors_names_a_file_that_is_not_utf8(tmp_path):
    """A Latin-1 `.txt` of queries is a one-line error naming the file, not a traceback."""
    queries = tmp_path / "queries.txt"
    queries.write_bytes(b"caf\xe9 au lait\n")
    result = run("priors", "--data", queries)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: {queries}: not UTF-8 (byte 0xe9 at offset 3)"


@pytest.mark.parametrize(
    "command",
    [["report", "--out", "r.html"], ["review", "export", "--out", "r.csv"], ["priors"]],
    ids=["report", "review-export", "priors"],
)
def test_a_telemetry_database_that_does_not_answer_is_a_one_line_error(tmp_path, command):
    """It was a SQLAlchemy traceback; the password in the URL stays out of the message."""
    url = f"postgresql://u:pw-secret@127.0.0.1:{free_port()}/nowhere"  # nothing listens there
    option = "--from-telemetry" if command == ["priors"] else "--db"
    result = run(*command, option, url, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr and "pw-secret" not in result.stderr
    assert result.stderr.strip() == f"error: {option}: telemetry database unusable (OperationalError)"  # as typed


def test_priors_reads_a_long_query_as_the_cascade_does(tmp_path):
    """A routed query of any length is classified (through its window); estimating priors from it must not fail."""
    queries = tmp_path / "queries.jsonl"
    rows = [{"text": "integrate x squared from 0 to 1"}, {"text": "def f(): pass\n" * 12_000}]
    queries.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = run("priors", "--data", queries)
    assert result.returncode == 0, result.stderr
    assert "2 queries; label mix" in result.stdout


def test_route_says_an_escalated_label_stands_when_no_stage_3_is_configured():
    demo = ROOT / "routing" / "configs" / "demo.yaml"  # it configures no stage 3
    outputs = [run("route", "--config", demo, q).stdout for q in ("hello there", "ok", "Prove that 2 + 2 = 4.")]
    note = "escalated=True (below the threshold; no stage 3 is configured, so this label stands)"
    assert all(("escalated=True" in out) == (note in out) for out in outputs), outputs
    assert any(note in out for out in outputs), outputs  # the premise: one of them is below the threshold
