"""`taskrouter report` and `review` on events from real routed traffic; the HTML opened in real Chromium."""

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from classifier.errors import DataError
from routing import TaskRouter
from routing.review import export_for_review, import_reviewed
from routing.telemetry import TelemetryStore
from tests.conftest import ROOT
from tests.integration.test_telemetry import priced_config, scripted_traffic

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def telemetry(fake, shipped_cascade, tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    url = f"sqlite:///{d / 'events.db'}"
    cfg = priced_config(fake, url)
    tr = TaskRouter(cfg, cascade=Cascade_with_escalations(shipped_cascade))
    scripted_traffic(fake, tr)
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    return d, url


def Cascade_with_escalations(cascade):
    """The shipped cascade escalating everything stage 2 sees, so the report has escalations to show."""
    from classifier.serving.cascade import Cascade

    return Cascade(cascade.classifier, cascade.rules, 1.0)


def charts(m):
    """Labels, served pools, fallbacks, cost and stages, and escalation over time where there are two periods:
    the scripted traffic takes seconds, so it spans two (hourly) periods only when it runs across the hour."""
    return 5 + (len(m["escalation_over_time"]) > 1)


def run_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "routing.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_report_cli_writes_html_and_json(telemetry):
    d, url = telemetry
    r = run_cli(
        "report", "--config", d / "config.yaml", "--out", d / "report.html", "--json", d / "report.json", cwd=ROOT
    )
    assert r.returncode == 0, r.stderr
    m = json.loads((d / "report.json").read_text())
    for key in ("requests", "pool_distribution", "fallback_rate", "cost_usd", "baseline_cost_usd", "escalation_rate"):
        assert key in m
    assert m["requests"] == 6 and m["baseline_cost_usd"] > 0 and m["escalation_rate"] > 0
    assert "Frequent fallbacks from 'math'" in r.stdout and "Most common label: " in r.stdout
    page = (d / "report.html").read_text()
    assert page.count("data:image/png;base64,") == charts(m) and "http" not in page.split("<body>")[1][:2000]
    assert "<h2>Traffic by label</h2>" in page
    r = run_cli("report", "--db", url, "--since", "not-a-date", "--out", d / "x.html", cwd=ROOT)
    assert r.returncode == 1 and "--since: not a date" in r.stderr


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed: run `bash scripts/setup.sh --browser` (as root: apt-get install chromium)",
)
def test_report_renders_in_headless_chromium(telemetry):
    playwright = pytest.importorskip("playwright.sync_api")
    d, _ = telemetry
    if not (d / "report.html").exists():
        test_report_cli_writes_html_and_json(telemetry)
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto((d / "report.html").as_uri())
        sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        headings = page.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")
        shot = page.screenshot(full_page=True)
        browser.close()
    assert not errors
    m = json.loads((d / "report.json").read_text())
    assert len(sizes) == charts(m) and all(ok and w > 200 and h > 100 for ok, w, h in sizes)
    assert "Sample of escalated queries" in headings
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000
    (d / "report.png").write_bytes(shot)


def test_review_export_and_import(telemetry, tmp_path):
    d, url = telemetry
    events = TelemetryStore(url).events()
    out = tmp_path / "review.jsonl"
    n = export_for_review(events, out, n=10)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert n == len(rows) >= 3 and all(r["label"] is None and r["text"] for r in rows)
    assert len({r["predicted"] for r in rows}) >= 2  # stratified over predicted labels
    rows[0]["label"] = "math"
    rows[1]["label"] = rows[1]["predicted"]
    training = tmp_path / "train.jsonl"
    training.write_text(
        json.dumps({"text": rows[1]["text"], "label": "code"})
        + "\n"
        + json.dumps({"text": "hello there", "label": "default"})
        + "\n"
        + json.dumps({"text": "integrate x squared", "label": "math"})
    )  # no final newline
    out.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    labeled = out.read_bytes()
    with pytest.raises(DataError, match=r"review\.jsonl: holds reviewed labels"):  # before: overwritten, labels lost
        export_for_review(events, out, n=10)
    assert out.read_bytes() == labeled
    s = import_reviewed(out, training)
    assert (s.added, len(s.conflicts), s.unlabeled) == (1, 1 if rows[1]["predicted"] != "code" else 0, n - 2)
    lines = training.read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[-1]) == {"text": rows[0]["text"], "label": "math"}


def test_an_export_that_fails_part_way_leaves_the_file_as_it_was(tmp_path):
    """Before: the export wrote in place, so a failure part-way left a truncated file."""
    out = tmp_path / "review.jsonl"
    out.write_text('{"request_id": "old", "text": "kept", "label": null}\n')
    before = out.read_bytes()
    good = {"request_id": "a", "query_text": "integrate x", "label": "math", "stage": "static", "confidence": 0.5,
            "escalated": True}  # fmt: skip
    bad = {**good, "request_id": "b", "query_text": "sort a list", "label": "code", "confidence": object()}
    with pytest.raises(TypeError):
        export_for_review([good, bad], out, n=10)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["review.jsonl"]


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        (b'{"text": "oops", "label": "math",}\n', "malformed JSON"),  # a reviewer's stray trailing comma
        (b'{"text": "caf\xe9", "label": "math"}\n', "not UTF-8"),  # saved by an editor in Latin-1
        (b'["not", "an", "object"]\n', "each line must be a JSON object"),
    ],
)
def test_an_export_never_replaces_a_review_file_it_cannot_read(tmp_path, bad_line, problem):
    """Before: a file that was not JSONL counted as holding no labels, so one bad line lost every label in it."""
    out = tmp_path / "review.jsonl"
    labelled = json.dumps({"request_id": "a", "text": "integrate x", "predicted": "code", "label": "math"}) + "\n"
    out.write_bytes(labelled.encode() + bad_line)
    before = out.read_bytes()
    event = {"request_id": "b", "query_text": "sort a list", "label": "code", "stage": "static", "confidence": 0.5,
             "escalated": True}  # fmt: skip
    with pytest.raises(DataError, match=rf"review\.jsonl:2: {problem}.*not overwritten") as info:
        export_for_review([event], out, n=10)
    assert (info.value.path, info.value.line) == (str(out), 2)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["review.jsonl"]


def test_review_import_into_csv_keeps_it_a_csv(tmp_path):
    from classifier.data import load_dataset

    training = tmp_path / "train.csv"
    training.write_bytes(b'\xef\xbb\xbftext,label\r\n"hello, there",default\r\nintegrate x,math')  # Excel: BOM, CRLF
    reviewed = tmp_path / "review.jsonl"
    reviewed.write_text(json.dumps({"text": 'say "hi", then sort a list', "label": "code"}) + "\n")
    with pytest.raises(DataError, match=r"review\.jsonl:1: .*unknown label 'code'.*new_labels=True"):
        import_reviewed(reviewed, training)  # `code` is not a label of this training file: refused, unless asked
    assert import_reviewed(reviewed, training, new_labels=True).added == 1
    data = load_dataset(training)
    assert data.labels == ("default", "math", "code") and data.texts[-1] == 'say "hi", then sort a list'
    with pytest.raises(DataError, match="must have the training file's type"):
        import_reviewed(reviewed, training, out=tmp_path / "merged.jsonl")


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"text": "integrate x squared", "label": "mathh"}, r"review\.jsonl:2: label: unknown label 'mathh'"),
        ({"text": "x" * 150_000, "label": "math"}, r"review\.jsonl:2: text: is 150,000 characters"),
        ({"text": "smile \ud83d please", "label": "default"}, r"review\.jsonl:2: text: is not valid Unicode"),
        ({"text": ["not", "a", "string"], "label": "math"}, r"review\.jsonl:2: text: must be a string"),
    ],
    ids=["label-typo", "huge-text", "lone-surrogate", "not-a-string"],
)
def test_a_bad_reviewed_row_changes_nothing(tmp_path, row, problem):
    """Every row is checked before the training file is touched; the file stays byte for byte as it was."""
    training = tmp_path / "train.jsonl"
    training.write_text(
        json.dumps({"text": "hello there", "label": "default"}) + "\n" + json.dumps({"text": "2+2", "label": "math"})
    )
    before = training.read_bytes()
    reviewed = tmp_path / "review.jsonl"
    good = {"text": "what is the integral of sin x", "label": "math"}
    reviewed.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=problem):
        import_reviewed(reviewed, training)
    assert training.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "review.jsonl",
        "train.jsonl",
    ]


def test_report_refuses_a_database_that_does_not_exist(tmp_path):
    r = run_cli("report", "--db", f"sqlite:///{tmp_path / 'evnts.db'}", "--out", tmp_path / "x.html", cwd=tmp_path)
    assert r.returncode == 1 and "error: --db: no telemetry database at" in r.stderr
    assert not (tmp_path / "evnts.db").exists() and not (tmp_path / "x.html").exists()
