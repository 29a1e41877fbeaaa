"""The public training corpus: its build checks (reserved sources, dev overlap) and, when built, its rows."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Built here, or the copy kept outside the repository (fetched data is not committed: see data/public/README.md).
CORPUS = next(
    (
        p
        for p in (
            ROOT / "data" / "public" / "corpus.jsonl",
            ROOT.parent / "shared" / "data" / "public" / "corpus.jsonl",
        )
        if p.is_file()
    ),
    ROOT / "data" / "public" / "corpus.jsonl",
)
RESERVED = ROOT.parent / "shared" / "data" / "reserved-sources.txt"
DEV = ROOT.parent / "shared" / "data" / "dev" / "dev.jsonl"
FIELDS = {"text", "label", "source", "license", "src_id"}


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_public", ROOT / "data" / "build" / "build_public.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


bp = _load_builder()

RESERVED_SAMPLE = """# comment
GSM8K                              openai/grade-school-math
IFEval (instruction_following_eval) google-research/google-research:instruction_following_eval Podtech-AI/IFEval
Alpaca+ (gisting)                  jayelm/gisting
"""


def _source(name: str, repo: str):
    return bp.Source(name, repo, "0" * 40, ("x",), "MIT", bp.load_trec, cap=10)


def test_reserved_file_parsing_and_refusal(tmp_path):
    path = tmp_path / "reserved.txt"
    path.write_text(RESERVED_SAMPLE, encoding="utf-8")
    names, repos = bp.load_reserved(path)
    assert {
        "openai/grade-school-math",
        "google-research/google-research",
        "podtech-ai/ifeval",
        "jayelm/gisting",
    } <= repos
    assert "gsm8k" in names and "ifeval" in names and "/" not in repos
    with pytest.raises(bp.ReservedSourceError, match="repository"):
        bp.check_not_reserved(_source("my-math", "OpenAI/Grade-School-Math"), names, repos)
    with pytest.raises(bp.ReservedSourceError, match="name"):
        bp.check_not_reserved(_source("gsm8k-copy", "someone/elsewhere"), names, repos)
    bp.check_not_reserved(_source("tal-scq5k-en", "math-eval/TAL-SCQ5K"), names, repos)


@pytest.mark.skipif(not RESERVED.is_file(), reason=f"no reserved-sources file at {RESERVED}")
def test_every_configured_source_passes_the_real_reserved_list():
    names, repos = bp.load_reserved(RESERVED)
    assert "quehry/hellobench" in repos and "lm-sys/fastchat" in repos
    for src in bp.SOURCES:
        bp.check_not_reserved(src, names, repos)


def test_dev_index_flags_exact_and_eight_word_runs():
    dev = bp.DevIndex(["The quick brown fox jumps over the lazy dog near the river bank."])
    assert dev.is_exact("  the QUICK brown fox jumps over the lazy dog near the river bank. ")
    assert dev.shares_run("Yesterday the quick brown fox jumps over the lazy dog again")
    assert not dev.shares_run("quick brown fox jumps over the lazy cat")  # a 7-word run only
    assert not dev.is_exact("something else entirely")


def _rows():
    if not CORPUS.is_file():
        pytest.skip(f"corpus not built at {CORPUS} (run data/build/build_public.py)")
    with CORPUS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_corpus_rows_have_fields_known_labels_and_no_reserved_source():
    rows = _rows()
    assert rows
    known = {s.name: s for s in bp.SOURCES}
    for row in rows:
        assert set(row) == FIELDS, row
        assert row["label"] in bp.LABELS
        assert row["source"] in known, row["source"]
        assert row["text"].strip() and len(row["text"]) <= bp.MAX_CHARS
    if RESERVED.is_file():
        names, repos = bp.load_reserved(RESERVED)
        for name in {r["source"] for r in rows}:
            bp.check_not_reserved(known[name], names, repos)
    keys = [" ".join(r["text"].lower().split()) for r in rows]
    assert len(keys) == len(set(keys)), "duplicate texts in the corpus"


def test_corpus_shares_no_eight_word_run_with_dev():
    rows = _rows()
    if not DEV.is_file():
        pytest.skip(f"no dev file at {DEV}")
    dev = bp.DevIndex.from_jsonl(DEV)
    hits = [r["src_id"] for r in rows if dev.is_exact(r["text"]) or dev.shares_run(r["text"])]
    assert hits == []
