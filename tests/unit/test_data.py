import csv
import json
import sys
from unicodedata import category

import pytest

from classifier.data import MAX_QUERY_CHARS, check_labels, check_query, load_dataset
from classifier.errors import DataError, LabelError, QueryError
from classifier.window import INVISIBLE, invisible_run


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_jsonl_and_csv_read_the_same_records(tmp_path):
    rows = [{"text": "sum of 2 and 2", "label": "math"}, {"text": 'say "hi", politely', "label": "chat"}]
    j = write(tmp_path, "q.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    c = write(tmp_path, "q.csv", 'text,label\nsum of 2 and 2,math\n"say ""hi"", politely",chat\n')
    assert load_dataset(j).texts == load_dataset(c).texts
    assert load_dataset(c).labels == ("math", "chat")


def test_user_label_set_is_accepted(tmp_path):
    p = write(
        tmp_path, "q.jsonl", '{"text": "refund please", "label": "billing"}\n{"text": "hi", "label": "smalltalk"}\n'
    )
    assert set(load_dataset(p).labels) == {"billing", "smalltalk"}


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"text": "ok", "label": "math"}\n{"text": "broken"\n', r"q\.jsonl:2: malformed JSON"),
        ('{"text": "   ", "label": "math"}\n', r":1: text: must not be empty"),
        ('{"text": 42, "label": "math"}\n', r":1: text: must be a string, got int"),
        ('{"label": "math"}\n', r":1: missing field 'text'"),
        ('{"text": "hello", "label": ""}\n', r":1: label: must be a non-empty string"),
        ('["text", "label"]\n', r":1: each line must be a JSON object"),
        ("", r"no records"),
    ],
    ids=["malformed-line", "blank-text", "non-string", "missing-field", "empty-label", "not-object", "empty-file"],
)
def test_bad_jsonl_names_line_and_field(tmp_path, content, match):
    with pytest.raises(DataError, match=match):
        load_dataset(write(tmp_path, "q.jsonl", content))


def test_unknown_label_is_reported_with_line(tmp_path):
    p = write(tmp_path, "q.jsonl", '{"text": "a", "label": "math"}\n{"text": "b", "label": "poetry"}\n')
    with pytest.raises(DataError, match=r":2: label: unknown label 'poetry'") as info:
        load_dataset(p, allowed_labels=["math", "code"])
    assert info.value.line == 2 and info.value.field == "label"


def test_a_label_with_spaces_around_it_reads_the_same_with_and_without_allowed_labels(tmp_path):
    p = write(tmp_path, "q.jsonl", '{"text": "a", "label": " math"}\n{"text": "b", "label": "code "}\n')
    assert load_dataset(p).labels == ("math", "code")
    assert load_dataset(p, allowed_labels=["math", "code"]).labels == ("math", "code")


def test_missing_file_and_wrong_type(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_dataset(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="unsupported file type"):
        load_dataset(write(tmp_path, "q.txt", "x"))
    with pytest.raises(DataError, match="header must have 'text' and 'label'"):
        load_dataset(write(tmp_path, "q.csv", "query,label\nx,y\n"))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("", "must not be empty"),
        ("  \n\t", "must not be empty"),
        (None, "must be a string, got NoneType"),
        (b"bytes", "must be a string, got bytes"),
        ("x" * (MAX_QUERY_CHARS + 1), "the limit is"),
        ("smile \ud83d please", "not valid Unicode \\(lone surrogate at character 6\\)"),
        ("\x00", "has no visible character"),
        ("\u200b\u200b \ufeff", "has no visible character"),
        ("\x7f\x1b\u2028", "has no visible character"),
        ("\U000e0001\U000e0020 \u2029\u00ad", "has no visible character"),
        ("\u200b" * 90_000 + "\n", "has no visible character"),
    ],
    ids=[
        "empty",
        "whitespace",
        "none",
        "bytes",
        "huge",
        "lone-surrogate",
        "nul",
        "zero-width",
        "controls",
        "tags",
        "long-zero-width",
    ],
)
def test_check_query_rejects(value, match):
    with pytest.raises(QueryError, match=match):
        check_query(value, max_chars=MAX_QUERY_CHARS)


@pytest.mark.parametrize("text", ["\U0001fae8", "\u200bhi", "\ue000", "∫ x dx", "\x00a"])
def test_one_visible_character_is_enough(text):
    """An emoji, private-use glyph or any visible character among invisible ones makes a query."""
    assert check_query(text) == text


def test_one_visible_character_after_a_long_invisible_run_is_enough():
    text = " \n" * 100_000 + "\u200b\ufeff\x00" * 100_000 + "?"
    assert check_query(text) is text


def test_the_invisible_run_is_exactly_the_invisible_categories():
    """The pattern that reads long invisible runs holds every code point of those categories and no other."""
    run = invisible_run()
    every = map(chr, range(sys.maxunicode + 1))
    wrong = [c for c in every if bool(run.fullmatch(c)) != (category(c) in INVISIBLE)]
    assert wrong == []


def test_query_length_limit_is_for_training_data_only(tmp_path):
    huge = "x" * (MAX_QUERY_CHARS + 1)
    assert check_query(huge) is huge  # classification reads a window of it
    with pytest.raises(DataError, match="the limit is"):
        load_dataset(write(tmp_path, "q.jsonl", json.dumps({"text": huge, "label": "a"}) + "\n"))


@pytest.mark.parametrize("chars", [110_000, 200_000], ids=["over-our-limit", "over-csv-field-limit-too"])
def test_an_over_long_csv_text_names_its_length_and_line(tmp_path, chars):
    """csv's own field limit (131,072) must not turn a too-long text into "malformed CSV" on the wrong line."""
    rows = ["text,label", *(f"query {i},a" for i in range(42)), "x" * chars + ",a", "last,b"]
    p = write(tmp_path, "q.csv", "\n".join(rows) + "\n")
    limit = csv.field_size_limit()
    with pytest.raises(DataError, match=rf"q\.csv:44: text: is {chars:,} characters; the limit is 100,000$") as info:
        load_dataset(p)
    assert (info.value.line, info.value.field) == (44, "text")
    assert csv.field_size_limit() == limit  # the process-wide limit is as it was


def test_check_labels():
    assert check_labels(["a", "b", "a", "b"]) == ["a", "b", "a", "b"]
    with pytest.raises(LabelError, match=r"fewer than 2 examples: \['c'\]"):
        check_labels(["a", "a", "b", "b", "c"])
    with pytest.raises(LabelError, match="at least 2 distinct labels"):
        check_labels(["a", "a"])
    with pytest.raises(LabelError, match=r"label\[1\]: must be a non-empty string"):
        check_labels(["a", 3])


def test_csv_with_a_byte_order_mark_reads(tmp_path):
    p = tmp_path / "excel.csv"
    p.write_bytes(b"\xef\xbb\xbftext,label\r\nhello there,default\r\nx = 1,math\r\nhi,default\r\ny = 2,math\r\n")
    assert load_dataset(p).texts == ("hello there", "x = 1", "hi", "y = 2")


@pytest.mark.parametrize("name", ["q.jsonl", "q.csv"])
def test_a_file_that_is_not_utf8_names_its_line(tmp_path, name):
    p = tmp_path / name
    head = b"text,label\n" if name.endswith(".csv") else b""
    good = b'{"text": "a", "label": "x"}\n' if name.endswith(".jsonl") else b"a,x\n"
    bad = b'{"text": "caf\xe9", "label": "x"}\n' if name.endswith(".jsonl") else b"caf\xe9,x\n"
    p.write_bytes(head + good + bad)
    line = 3 if head else 2
    with pytest.raises(DataError, match=rf"{name}:{line}: not UTF-8 \(byte 0xe9"):
        load_dataset(p)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ('{"text": "2+2", "label": "math", "label": "code"}', r"d\.jsonl:2: .*'label' is repeated"),  # json kept "code"
        ('{"text": ' + "[" * 200_000 + "]" * 200_000 + "}", r"d\.jsonl:2: .*nested too deeply"),  # a RecursionError
    ],
    ids=["repeated-key", "nested-too-deeply"],
)
def test_a_line_json_cannot_read_whole_is_a_data_error_naming_it(tmp_path, line, match):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "hello there", "label": "default"}\n' + line + "\n")
    with pytest.raises(DataError, match=match):
        load_dataset(p)
