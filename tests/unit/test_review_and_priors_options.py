"""`review export --training` skips requests already labelled into the training file; `priors --since` estimates
the mix from recent telemetry only. Both on real SQLite telemetry files, through the command line in-process."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from routing.telemetry import TelemetryStore
from tests.conftest import run_cli

MATH = [
    "Integrate x^2 from 0 to 1.",
    "Solve 3x + 5 = 20 for x.",
    "What is the derivative of sin(x) * x^2?",
    "Compute the eigenvalues of the matrix [[2, 1], [1, 2]].",
    "Prove that the square root of 2 is irrational.",
    "What is 15% of 240?",
]
CODE = [
    "Write a Python function that reverses a linked list.",
    "Fix this SQL join: SELECT * FROM orders JOIN users ON orders.user = users.id",
    "How do I read a CSV file with pandas and drop the empty rows?",
    "Write a bash loop that renames every .txt file in a folder to .md.",
    "Why does the Rust compiler say my borrowed value does not live long enough?",
    "Implement binary search in JavaScript.",
]
OLD, NEW = datetime(2025, 1, 1, 12, tzinfo=UTC), datetime(2025, 3, 1, 12, tzinfo=UTC)


def run(args: list[str]) -> tuple[int, str, str]:
    """`taskrouter ARGS` in this process: (exit status, stdout, stderr)."""
    return run_cli(args)


def event(i: int, text: str, label: str, ts: datetime) -> dict:
    """One escalated request, its text stored."""
    return {"request_id": f"r{i}", "ts": ts, "label": label, "stage": "embedding", "confidence": 0.5,
            "escalated": True, "held_back": False, "requested_pool": "fast", "served_pool": "fast",
            "deployment": "d", "fallback": False, "input_tokens": 10, "output_tokens": 5, "cost_usd": 0.0,
            "latency_s": 0.1, "status": "success", "error_class": None, "query_text": text}  # fmt: skip


def telemetry_db(path, events: list[dict]) -> str:
    store = TelemetryStore(f"sqlite:///{path}")
    for e in events:
        store.record(e)
    return f"sqlite:///{path}"


# -- review export --training ----------------------------------------------------------------------------------
@pytest.fixture
def reviewed_setup(tmp_path):
    """Telemetry holding a math and a code request; a training file holding the math one (cased and spaced
    differently, as a reviewer's import may leave it)."""
    url = telemetry_db(tmp_path / "events.db", [event(0, MATH[0], "math", OLD), event(1, CODE[0], "code", OLD)])
    training = tmp_path / "train.jsonl"
    rows = [{"text": "  integrate X^2   from 0 to 1. ", "label": "math"}, {"text": "hello there", "label": "default"}]
    training.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return url, training


def exported(path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text().splitlines()]


def test_review_export_skips_requests_already_in_the_training_file(tmp_path, reviewed_setup):
    url, training = reviewed_setup
    out = tmp_path / "review.jsonl"
    code, stdout, err = run(["review", "export", "--db", url, "--out", str(out), "--training", str(training)])
    assert code == 0, err
    assert exported(out) == [CODE[0]]
    assert f"skipped 1 already in --training {training}" in stdout
    code, stdout, err = run(["review", "export", "--db", url, "--out", str(out)])  # without it: both offered
    assert code == 0, err
    assert sorted(exported(out)) == sorted([MATH[0], CODE[0]]) and "skipped" not in stdout


def test_export_for_review_excludes_texts_as_import_compares_them(tmp_path):
    from routing.review import count_excluded, export_for_review

    events = [event(0, MATH[0], "math", OLD), event(1, CODE[0], "code", OLD), event(2, CODE[1], "code", OLD)]
    out = tmp_path / "review.jsonl"
    assert export_for_review(events, out, n=10, exclude_texts=[MATH[0].upper(), "unrelated"]) == 2
    assert sorted(exported(out)) == sorted(CODE[:2])
    assert count_excluded(events, [MATH[0].upper(), "unrelated"]) == 1
    assert export_for_review(events, out, n=10) == 3


def test_a_training_row_with_an_address_matches_its_redacted_request(tmp_path):
    """Telemetry stores a request's text redacted (`[email]`); the training row keeps the address."""
    from routing.review import export_for_review
    from routing.telemetry import redact

    asked = "Write to bob@example.com: why does my Python loop never end?"
    assert redact(asked) != asked  # what the store keeps is not the text as written
    events = [event(0, redact(asked), "code", OLD), event(1, CODE[1], "code", OLD)]
    out = tmp_path / "review.jsonl"
    assert export_for_review(events, out, n=10, exclude_texts=[asked]) == 1
    assert exported(out) == [CODE[1]]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, ": file not found"),
        (b'{"text": "a", "label": "math"}\n{"text": "b",\n', r":2: malformed JSON"),
        (b'{"text": "caf\xe9", "label": "math"}\n', r":1: not UTF-8"),
        (b'{"text": "a"}\n', r":1: missing field 'label'"),
    ],
    ids=["missing", "malformed", "latin1", "no-label"],
)
def test_a_training_file_that_cannot_be_read_is_named_by_its_option(tmp_path, reviewed_setup, content, problem):
    url, _ = reviewed_setup
    training, out = tmp_path / "bad.jsonl", tmp_path / "review.jsonl"
    if content is not None:
        training.write_bytes(content)
    code, _, err = run(["review", "export", "--db", url, "--out", str(out), "--training", str(training)])
    assert code == 1 and "Traceback" not in err
    assert re.fullmatch(rf"error: --training: {re.escape(str(training))}{problem}.*", err.strip()), err
    assert not out.exists()


def test_review_export_refuses_to_write_over_its_training_file(reviewed_setup):
    url, training = reviewed_setup
    before = training.read_bytes()
    code, _, err = run(["review", "export", "--db", url, "--out", str(training), "--training", str(training)])
    assert code == 1 and "is an input of this command" in err
    assert training.read_bytes() == before


# -- priors --since --------------------------------------------------------------------------------------------
@pytest.fixture
def old_math_new_code(tmp_path):
    """Math requests on the first of January, code requests on the first of March."""
    events = [event(i, t, "math", OLD) for i, t in enumerate(MATH)]
    events += [event(len(MATH) + i, t, "code", NEW) for i, t in enumerate(CODE)]
    return telemetry_db(tmp_path / "events.db", events)


def estimated(stdout: str) -> dict[str, float]:
    """The estimated share of each label, from lines `  label  training -> estimated -> bounded`."""
    found = re.findall(r"^  (\w+)\s+[\d.]+ -> ([\d.]+) -> [\d.]+$", stdout, flags=re.M)
    return {label: float(share) for label, share in found}


def test_priors_since_estimates_the_mix_from_recent_traffic_only(old_math_new_code):
    code, all_out, err = run(["priors", "--from-telemetry", old_math_new_code])
    assert code == 0, err
    code, recent_out, err = run(["priors", "--from-telemetry", old_math_new_code, "--since", "2025-02-01"])
    assert code == 0, err
    assert all_out.startswith(f"{len(MATH) + len(CODE)} queries; ")
    assert recent_out.startswith(f"{len(CODE)} queries since 2025-02-01T00:00:00+00:00; ")
    everything, recent = estimated(all_out), estimated(recent_out)
    assert everything["math"] > 0.3 and everything["code"] > 0.3  # the premise: both kinds are read as such
    assert recent["code"] > 0.8 and recent["math"] < 0.05


def test_priors_since_reads_an_offset(old_math_new_code):
    """12:00 at +05:00 on 1 March is 07:00 UTC, before the code requests (12:00 UTC): all six are read."""
    code, stdout, err = run(["priors", "--from-telemetry", old_math_new_code, "--since", "2025-03-01T12:00+05:00"])
    assert code == 0, err
    assert stdout.startswith(f"{len(CODE)} queries since 2025-03-01T07:00:00+00:00; ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--data", "queries.txt", "--since", "2025-02-01"],
            "--since reads the telemetry's times: give it with --from-telemetry URL",
        ),  # fmt: skip
        (["--since", "2025-02-01"], "--since reads the telemetry's times: give it with --from-telemetry URL"),
        (["--from-telemetry", "DB", "--since", "yesterday"], "--since: not a date: 'yesterday'"),
        (["--from-telemetry", "DB", "--since", ""], "--since: not a date: ''"),
        (
            ["--from-telemetry", "DB", "--since", "2026-01-01"],
            "--since: no telemetry events from 2026-01-01T00:00:00+00:00 on",
        ),
    ],
    ids=["with-data", "alone", "bad-date", "empty-date", "nothing-since"],
)
def test_a_bad_since_is_named(tmp_path, old_math_new_code, args, message):
    (tmp_path / "queries.txt").write_text("integrate x^2 from 0 to 1\n")
    args = [str(tmp_path / a) if a == "queries.txt" else old_math_new_code if a == "DB" else a for a in args]
    code, _, err = run(["priors", *args])
    assert code == 1 and err.strip() == f"error: {message}", err
