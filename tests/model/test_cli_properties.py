"""Every subcommand, driven with random option values, ends in one of three ways: exit 0; exit 1 with one line
`error: ...` (our errors, bad files included); exit 2 with click's usage error. Never a traceback.

Each run is `routing.cli.main`, the installed `taskrouter` entry point, in-process inside typer's CliRunner
isolation (stdin, stdout, stderr and TASKROUTER_CONFIG replaced), in a temporary folder. No run does real work:
training and tuning data is always unreadable or too small, configs are the demo one (mock replies) or broken
ones, databases are SQLite files or junk. MAX_EXAMPLES invocations per subcommand.
"""

import logging

import pytest
import typer.main
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from routing.cli import app, main
from tests.conftest import ROOT

MAX_EXAMPLES = 25
SETTINGS = settings(
    max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

FLOATS = st.one_of(st.floats(), st.integers(-3, 3), st.sampled_from(["", "x", "1e999", "-inf", "0.5"])).map(str)
INTS = st.one_of(st.integers(-(2**40), 2**40), st.sampled_from(["", "1.5", "x", "0", "1"])).map(str)
TEXT = st.text(max_size=20)
STDIN = st.one_of(TEXT, st.sampled_from(["", "integrate x^2 from 0 to 1\n", b"caf\xe9\n"]))

# Files in the temporary folder (see `workdir`); the shipped model, rules and demo config by absolute path.
MODEL, RULES, DEMO = (
    str(ROOT / "classifier" / "model"),
    str(ROOT / "classifier" / "rules" / "default.yaml"),
    str(ROOT / "routing" / "configs" / "demo.yaml"),
)
BROKEN = ["missing.jsonl", "folder", "empty.jsonl", "malformed.jsonl", "latin1.txt"]
UNTRAINABLE = st.sampled_from([*BROKEN, "few.jsonl"])  # few.jsonl: one label has a single row
EVAL_DATA = st.sampled_from([*BROKEN, "few.jsonl", "three_labels.csv"])  # three labels the model lacks
ANY_FILE = st.sampled_from([*BROKEN, "few.jsonl", "three_labels.csv", "queries.txt", "broken.yaml"])
MODELS = st.sampled_from(["missing-model", "folder", "empty.jsonl", MODEL])
CONFIGS = st.sampled_from(["missing.yaml", "folder", "empty.jsonl", "broken.yaml", DEMO])
OUTPUTS = st.sampled_from(["out.json", "folder", "no-such-folder/out.json", "empty.jsonl/out.json"])
DATABASES = st.one_of(st.sampled_from(["sqlite:///missing.db", "sqlite:///events.db", "sqlite://", "junk"]), TEXT)


def opt(flag, values):
    """`flag VALUE`, or nothing."""
    return st.one_of(st.just([]), values.map(lambda v: [flag, v]))


def flag(*forms):
    return st.sampled_from([[], *([f] for f in forms)])


# Every subcommand and every one of its options (`test_the_tables_cover_every_option` keeps this complete).
COMMANDS = {
    "train": {
        "--data": UNTRAINABLE.map(lambda v: ["--data", v]),
        "--out": opt("--out", OUTPUTS),
        "--rules": opt("--rules", st.sampled_from([*BROKEN, "broken.yaml", RULES])),
        "--max-escalation": opt("--max-escalation", FLOATS),
        "--max-error": opt("--max-error", FLOATS),
        "--precision-floor": opt("--precision-floor", FLOATS),
        "--static": flag("--static", "--no-static"),
        "--static-features": flag("--static-features", "--no-static-features"),
        "--static-max-error": opt("--static-max-error", FLOATS),
        "--scope-max-fallback": opt("--scope-max-fallback", FLOATS),
        "--calibration-data": opt("--calibration-data", st.sampled_from(BROKEN)),
        "--static-max-error-out-of-source": opt("--static-max-error-out-of-source", FLOATS),
        "--c": opt("--c", FLOATS),
        "--static-c": opt("--static-c", FLOATS),
        "--select-c": opt("--select-c", FLOATS),
        "--lexical-weight": opt("--lexical-weight", FLOATS),
        "--select-lexical-weight": opt("--select-lexical-weight", FLOATS),
        "--select-by": opt("--select-by", st.sampled_from(["balanced-accuracy", "macro-f1", "", "accuracy"])),
        "--encoder": opt("--encoder", st.sampled_from(["auto", "base", "tuned", "", "big"])),
        "--cv-vectors": opt("--cv-vectors", st.sampled_from(BROKEN)),
        "--seed": opt("--seed", INTS),
    },
    "tune-encoder": {
        "--data": st.sampled_from(BROKEN).map(lambda v: ["--data", v]),
        "--out": opt("--out", OUTPUTS),
        "--objective": opt("--objective", st.sampled_from(["softmax", "contrastive", "", "triplet"])),
        "--epochs": opt("--epochs", INTS),
        "--device": opt("--device", st.one_of(st.sampled_from(["cpu", "cuda", "cuda:7"]), TEXT)),
        "--install": flag("--install", "--no-install"),
        "--cross-fit": flag("--cross-fit", "--no-cross-fit"),
        "--seed": opt("--seed", INTS),
    },
    "priors": {
        "--data": opt("--data", ANY_FILE),
        "--from-telemetry": opt("--from-telemetry", DATABASES),
        "--model": opt("--model", MODELS),
        "--pseudo-count": opt("--pseudo-count", FLOATS),
        "--max-ratio": opt("--max-ratio", FLOATS),
        "--since": opt("--since", st.one_of(st.sampled_from(["2026-01-01", "2026-13-01", "yesterday"]), TEXT)),
    },
    "evaluate": {
        "--data": EVAL_DATA.map(lambda v: ["--data", v]),
        "--model": opt("--model", MODELS),
        "--json": opt("--json", OUTPUTS),
        "--llm": opt("--llm", st.sampled_from(["off", "config", "labels", "oracle", "", "gpt"])),
        "--answers": opt("--answers", ANY_FILE),
        "--config": opt("--config", CONFIGS),
        "--sweep": opt("--sweep", OUTPUTS),
        "--out-dir": opt("--out-dir", OUTPUTS),
        "--threshold": opt("--threshold", FLOATS),
        "--static": flag("--static", "--no-static"),
        "--static-threshold": opt("--static-threshold", FLOATS),
        "--errors": opt("--errors", OUTPUTS),
        "--by": opt("--by", st.one_of(st.just("source"), TEXT)),
    },
    "compare": {
        "OLD": MODELS.map(lambda v: [v]),
        "NEW": MODELS.map(lambda v: [v]),
        "--data": EVAL_DATA.map(lambda v: ["--data", v]),
        "--json": opt("--json", OUTPUTS),
    },
    "assets build": {  # always into a folder that cannot be made, so nothing is exported or overwritten
        "--dest": st.sampled_from(["empty.jsonl", "empty.jsonl/assets"]).map(lambda v: ["--dest", v]),
        "--encoder": opt("--encoder", st.sampled_from(["base", "tuned", "", "big"])),
        "--source": opt("--source", st.sampled_from([*BROKEN, "folder"])),
    },
    "assets int8": {  # --check: the cached file is verified, never built
        "--encoder": opt("--encoder", st.sampled_from(["base", "tuned", "", "big"])),
        "--check": st.just(["--check"]),
    },
    "model upgrade": {  # never the shipped model, which the default would rewrite
        "DIRECTORY": st.sampled_from(["missing-model", "folder", "empty.jsonl"]).map(lambda v: [v]),
    },
    "report": {
        "--out": opt("--out", OUTPUTS),
        "--db": opt("--db", DATABASES),
        "--config": opt("--config", CONFIGS),
        "--since": opt("--since", st.one_of(st.sampled_from(["2026-01-01", "2026-13-01", "yesterday"]), TEXT)),
        "--json": opt("--json", OUTPUTS),
        "--baseline-pool": opt("--baseline-pool", st.one_of(st.just("capable"), TEXT)),
    },
    "review export": {
        "--out": OUTPUTS.map(lambda v: ["--out", v]),
        "--db": DATABASES.map(lambda v: ["--db", v]),
        "--n": opt("--n", INTS),
        "--low-confidence": opt("--low-confidence", FLOATS),
        "--training": opt("--training", st.sampled_from([*BROKEN, "training.jsonl"])),
    },
    "review import": {
        "--labels": st.sampled_from([*BROKEN, "reviewed.jsonl"]).map(lambda v: ["--labels", v]),
        "--into": st.sampled_from([*BROKEN, "training.jsonl"]).map(lambda v: ["--into", v]),
        "--out": opt("--out", OUTPUTS),
        "--new-labels": flag("--new-labels", "--no-new-labels"),
    },
    "classify": {
        "QUERIES": st.lists(st.one_of(TEXT, st.just("-")), max_size=3),
        "--model": opt("--model", MODELS),
        "--file": st.lists(ANY_FILE, max_size=2).map(lambda fs: [t for f in fs for t in ("--file", f)]),
    },
    "route": {
        "QUERY": st.one_of(st.just([]), st.one_of(TEXT, st.just("-")).map(lambda q: [q])),
        "--config": opt("--config", CONFIGS),
        "--file": opt("--file", ANY_FILE),
    },
    "complete": {
        "QUERY": st.one_of(st.just([]), st.one_of(TEXT, st.just("-")).map(lambda q: [q])),
        "--config": opt("--config", st.sampled_from(["missing.yaml", "folder", "broken.yaml", DEMO])),
        "--file": opt("--file", ANY_FILE),
    },
}


def invocation(command: str):
    parts = [st.just(command.split()), *COMMANDS[command].values()]
    return st.tuples(*parts).map(lambda ps: [token for p in ps for token in p])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder of good, bad and missing files to point the options at, made the current folder; the
    `taskrouter` logger, which `main` sets up, is put back afterwards."""
    d = tmp_path_factory.mktemp("cli")
    (d / "folder").mkdir()
    (d / "empty.jsonl").write_text("")
    (d / "malformed.jsonl").write_text('{"text": "a", "label": "math"}\n{"text": "b",\n')
    (d / "latin1.txt").write_bytes(b"caf\xe9\n")
    few = '{"text": "integrate x^2", "label": "math"}\n{"text": "solve 2x = 4", "label": "math"}\n'
    (d / "few.jsonl").write_text(few + '{"text": "reverse a list in python", "label": "code"}\n')
    (d / "three_labels.csv").write_bytes((ROOT / "tests" / "data" / "three_labels.csv").read_bytes())
    (d / "queries.txt").write_text("integrate x^2 from 0 to 1\nwrite a haiku about snow\n")
    (d / "broken.yaml").write_text("model_list: [\n")
    (d / "reviewed.jsonl").write_text('{"text": "what is 2+2", "label": "math"}\n{"text": "hi", "label": ""}\n')
    (d / "training.jsonl").write_text(few)
    logger = logging.getLogger("taskrouter")
    saved = logger.handlers[:], logger.level, logger.propagate
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        yield d
    logger.handlers[:], logger.level, logger.propagate = saved


def run(args: list[str], stdin: str | bytes) -> tuple[int, str, str]:
    """`taskrouter ARGS` in this process: (exit status, stdout, stderr). Any other exception propagates."""
    with CliRunner().isolation(input=stdin, env={"TASKROUTER_CONFIG": None}) as (out, err, _):
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        return code, out.getvalue().decode("utf-8", "replace"), err.getvalue().decode("utf-8", "replace")


@pytest.mark.parametrize("command", list(COMMANDS))
@SETTINGS
@given(data=st.data())
def test_every_subcommand_ends_in_a_result_or_one_line(workdir, command, data):
    args = data.draw(invocation(command), label="args")
    code, out, err = run(args, data.draw(STDIN, label="stdin"))
    event(f"exit {code}")  # --hypothesis-show-statistics shows how the runs ended
    lines = err.strip().splitlines()
    assert "Traceback" not in out + err, (args, err)
    assert code in (0, 1, 2), (args, code, err)
    if code == 1:  # ours: one line, the last one (log lines and notes may come before it)
        assert lines and lines[-1].startswith("error: "), (args, err)
        assert sum(line.startswith(("error: ", "Error: ")) for line in lines) == 1, (args, err)
    if code == 2:  # click's usage error: usage, a hint, then the one line that says what is wrong
        assert lines and lines[-1].startswith("Error: "), (args, err)


def test_the_tables_cover_every_option():
    """COMMANDS names every subcommand of the app and every option of each, so a new one is driven too."""
    found = {}

    def walk(command, words):
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*words, name])
        if not getattr(command, "commands", None):
            found[" ".join(words)] = {
                p.opts[0] if p.param_type_name == "option" else p.name.upper() for p in command.params
            }

    walk(typer.main.get_command(app), [])
    assert found == {command: set(options) for command, options in COMMANDS.items()}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["evaluate", "--data", "three_labels.csv", "--threshold", "1.5"],
            "'--threshold' parameter of `taskrouter evaluate`",
        ),
        (["evaluate", "--data", "three_labels.csv", "--static-threshold", "nan"], "'--static-threshold' parameter"),
        (
            ["train", "--data", "three_labels.csv", "--max-error", "1.5"],
            "'--max-error' parameter of `taskrouter train`",
        ),
        (
            ["train", "--data", "three_labels.csv", "--max-error", "0.1", "--max-escalation", "0.1"],
            "'--max-error' parameter",
        ),
        (["priors", "--data", "queries.txt", "--max-ratio", "0.5"], "'--max-ratio' parameter of `taskrouter priors`"),
        (["review", "export", "--out", "x.jsonl", "--db", "sqlite://", "--n", "0"], "'--n' parameter"),
    ],
    ids=["threshold", "static-threshold", "max-error", "both-targets", "max-ratio", "n"],
)
def test_a_bad_option_is_one_line_and_exit_1(workdir, args, message):
    """Before: `evaluate --threshold 1.5` printed a traceback; `train --max-error 1.5` trained a head first."""
    code, out, err = run(args, "")
    assert code == 1 and err.strip().splitlines()[-1].startswith("error: ") and message in err, (code, err)
    assert "[taskrouter" not in err and not (workdir / "taskrouter-model").exists()  # refused before any work


def test_a_file_that_cannot_be_written_is_one_line_and_exit_1(workdir):
    code, out, err = run(["evaluate", "--data", "few.jsonl", "--json", "empty.jsonl/m.json"], "")  # under a file
    assert code == 1 and "Traceback" not in err, err
    assert err.strip().splitlines() == ["error: --json empty.jsonl/m.json: empty.jsonl is not a folder"]
