"""load_dataset refuses a text with two labels and drops repeated rows; label-count errors name the file."""

import json
import logging

import pytest

from classifier.data import check_labels, load_dataset
from classifier.errors import DataError, LabelError


def jsonl(tmp_path, rows, name="q.jsonl"):
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return p


class Said(logging.Handler):
    """The records of one logger (its own handler: the CLI may have stopped propagation to the root)."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.DEBUG)
        self.logger, self.messages = logging.getLogger(name), []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self):
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self)


@pytest.mark.parametrize(
    ("second", "line"),
    [("integrate x^2", 3), ("  Integrate   X^2 ", 3)],
    ids=["exact", "case-and-spacing"],
)
def test_a_text_with_two_labels_is_a_data_error_naming_both_lines(tmp_path, second, line):
    """Before: both rows were kept, and the head was trained on a contradiction."""
    p = jsonl(
        tmp_path,
        [
            {"text": "integrate x^2", "label": "math"},
            {"text": "sort a list", "label": "code"},
            {"text": second, "label": "code"},
        ],
    )
    with pytest.raises(DataError, match=r"q\.jsonl:3: .*as line 1 has label 'code' here and 'math' there") as info:
        load_dataset(p)
    assert info.value.line == line and info.value.field == "label"


def test_a_csv_text_with_two_labels_names_the_csv_lines(tmp_path):
    p = tmp_path / "q.csv"
    p.write_text("text,label\nhello there,chat\nsum 2 and 2,math\nhello there,math\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"q\.csv:4: .*as line 2 has label 'math'"):
        load_dataset(p)


def test_repeated_rows_are_dropped_with_a_warning_and_sources_stay_aligned(tmp_path):
    """Before: each repeat was kept and sat on both sides of a cross-validation split (CV macro-F1 1.0)."""
    rows = [
        {"text": "integrate x^2", "label": "math", "source": "a"},
        {"text": "sort a list", "label": "code", "source": "b"},
        {"text": "integrate x^2", "label": "math", "source": "c"},  # line 3: a repeat
        {"text": "hello", "label": "chat", "source": "d"},
        {"text": "sort a list", "label": "code", "source": "e"},  # line 5: a repeat
        {"text": "Integrate X^2", "label": "math", "source": "f"},  # the same once folded, and the same label: kept
    ]
    with Said("taskrouter.data") as said:
        data = load_dataset(jsonl(tmp_path, rows))
    assert data.texts == ("integrate x^2", "sort a list", "hello", "Integrate X^2")
    assert data.labels == ("math", "code", "chat", "math")
    assert data.sources == ("a", "b", "d", "f")
    assert len(said.messages) == 1 and "dropped 2 duplicate row(s)" in said.messages[0]
    assert "the first at line 3" in said.messages[0] and "q.jsonl" in said.messages[0]


def test_a_file_without_repeats_loads_as_before_and_says_nothing(tmp_path):
    rows = [{"text": f"row {i}", "label": "ab"[i % 2]} for i in range(6)]
    with Said("taskrouter.data") as said:
        data = load_dataset(jsonl(tmp_path, rows))
    assert len(data) == 6 and data.sources is None and not said.messages


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (["code", "code"], r"q\.jsonl: need at least 2 distinct labels"),
        (["code", "code", "poetry"], r"q\.jsonl: labels with fewer than 2 examples: \['poetry'\]"),
    ],
    ids=["one-label", "rare-label"],
)
def test_label_count_errors_name_the_file_they_came_from(tmp_path, labels, match):
    """Before: "labels with fewer than 2 examples: ['poetry']", with no file named."""
    from classifier.training.train import train_cascade

    data = load_dataset(jsonl(tmp_path, [{"text": f"row {i}", "label": y} for i, y in enumerate(labels)]))
    with pytest.raises(LabelError, match=match):
        train_cascade(data)  # refused before any work
    with pytest.raises(LabelError, match=match):
        check_labels(labels, path=data.path)
    with pytest.raises(LabelError, match=r"^need at least"):
        check_labels(["code"])  # no file: the message as before
