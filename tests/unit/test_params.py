"""Parameters are checked at the door: one table per public function, an error naming the parameter, no work first."""

import logging
from fractions import Fraction
from numbers import Integral, Real
from pathlib import Path

import pytest

from classifier.data import Dataset, load_dataset
from classifier.errors import InvalidParameterError, LabelError, QueryError, TaskRouterError
from classifier.params import COUNT, SHARE, THRESHOLD, Interval, Options, validate_params
from classifier.serving.cascade import Cascade

DATA = Path(__file__).resolve().parents[1] / "data" / "three_labels.csv"


@pytest.mark.parametrize(
    ("constraints", "value", "message"),
    [
        ([SHARE], 1.5, "must be a float in [0, 1]. Got 1.5 instead."),
        ([None, SHARE], float("nan"), "must be a float in [0, 1] or None. Got nan instead."),
        ([SHARE], float("inf"), "Got inf instead."),
        ([THRESHOLD], 1.01, "must be a float in [0, 1]. Got 1.01 instead."),
        ([COUNT], True, "must be an int >= 0. Got True instead."),
        ([COUNT], 2.0, "must be an int >= 0. Got 2.0 instead."),
        ([Interval(Real, 0, None, closed="neither")], 0, "must be a float > 0. Got 0 instead."),
        ([Interval(Integral, 1, 100, closed="both")], 0, "must be an int in [1, 100]. Got 0 instead."),
        ([Options(("off", "on"))], "of", "must be one of ['off', 'on']. Got 'of' instead."),
        ([Options(("off", "on"))], ["off"], "Got ['off'] instead."),
        ([None, str, bool], 3, "must be a str, a bool or None. Got 3 instead."),
        ([bool], 1, "must be a bool. Got 1 instead."),
        ([int], "x" * 200, "Got '" + "x" * 76 + "..."),
        ([Interval(Integral, 0, 100, closed="both")], 10**400, "must be an int in [0, 100]. Got 1000"),
        ([SHARE], Fraction(10**400), "must be a float in [0, 1]. Got Fraction("),
    ],
    ids=[
        "above",
        "nan",
        "inf",
        "threshold",
        "bool-not-int",
        "float-not-int",
        "open",
        "closed",
        "option",
        "unhashable",
        "types",
        "int-not-bool",
        "long-value",
        "int-beyond-float",
        "real-beyond-float",
    ],  # fmt: skip
)
def test_a_value_meeting_no_constraint_is_named(constraints, value, message):
    with pytest.raises(InvalidParameterError) as exc:
        validate_params({"p": constraints}, {"p": value}, caller="f")
    assert str(exc.value).startswith("The 'p' parameter of f must be ") and message in str(exc.value)
    assert exc.value.parameter == "p" and exc.value.caller == "f"
    assert isinstance(exc.value, TaskRouterError) and isinstance(exc.value, ValueError)


@pytest.mark.parametrize(
    ("constraints", "value"),
    [
        ([SHARE], 0),
        ([SHARE], 1.0),
        ([THRESHOLD], 1 + 1e-9),
        ([None, SHARE], None),
        ([COUNT], 0),
        ([str], ""),
        ([COUNT], 10**400),
    ],
    ids=["zero", "one", "just-above-1", "none", "count", "str", "huge-count"],
)
def test_a_value_meeting_a_constraint_passes(constraints, value):
    validate_params({"p": constraints}, {"p": value}, caller="f")


def test_at_most_one_of_an_exclusive_pair():
    table = {"a": [None, SHARE], "b": [None, SHARE]}
    validate_params(table, {"a": 0.1, "b": None}, caller="f", exclusive=[("a", "b")])
    with pytest.raises(InvalidParameterError, match="The 'b' parameter of f must be left out when 'a' is given"):
        validate_params(table, {"a": 0.1, "b": 0.2}, caller="f", exclusive=[("a", "b")])


def test_a_table_naming_no_parameter_is_a_program_error():
    with pytest.raises(TypeError, match="names 'q'"):
        validate_params({"q": [SHARE]}, {"p": 0.5}, caller="f")


def test_train_cascade_refuses_a_bad_target_before_any_work():
    """Before: `max_error=1.5` was refused by choose_threshold, after the heads had been trained."""
    from classifier.training.train import train_cascade

    data, said = load_dataset(DATA), Said()
    logger = logging.getLogger("taskrouter.train")  # its own handler: the CLI may have stopped propagation
    level = logger.level
    logger.addHandler(said)
    logger.setLevel(logging.DEBUG)  # the effective level is WARNING: the phases' info lines would not reach `said`
    try:
        for kwargs, name in [
            ({"max_error": 1.5}, "max_error"),
            ({"max_escalation": -0.1}, "max_escalation"),
            ({"max_escalation": 0.1, "max_error": 0.05}, "max_error"),
            ({"random_state": -1}, "random_state"),
            ({"static_max_error": 2}, "static_max_error"),
        ]:
            with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter of train_cascade"):
                train_cascade(data, **kwargs)
    finally:
        logger.removeHandler(said)
        logger.setLevel(level)
    assert not said.messages  # no training phase began


@pytest.mark.parametrize(
    ("texts", "labels", "error", "match"),
    [
        (("a b", "c d", "e f"), ("math", "math", "code", "code"), InvalidParameterError, "one label per text"),
        (("a b", 5, "e f", "g h"), ("math", "math", "code", "code"), QueryError, r"data\.texts\[1\]: must be a string"),
        (("a b", "c d", "e f", "g h"), ("math", "math", "code", 3), LabelError, r"label\[3\]"),
    ],
    ids=["lengths", "not-a-string", "label-not-a-string"],
)
def test_train_cascade_checks_a_dataset_built_by_hand(texts, labels, error, match):
    """Before: a zip() ValueError and a TypeError from the keyword rules' calibration."""
    from classifier.training.train import train_cascade

    with pytest.raises(error, match=match):
        train_cascade(Dataset(texts, labels))


class Said(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"static_threshold": -0.5}, "static_threshold"),
        ({"cache_size": -1}, "cache_size"),
    ],
    ids=["threshold", "static-threshold", "cache-size"],
)
def test_cascade_load_checks_before_reading_the_model(kwargs, name, tmp_path):
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter of Cascade.load must be"):
        Cascade.load(tmp_path / "no-model-here", **kwargs)  # the parameter, not the missing model, is reported


def test_cascade_checks_its_thresholds_first():
    with pytest.raises(
        InvalidParameterError, match=r"The 'threshold' parameter of Cascade must be a float in \[0, 1\]"
    ):
        Cascade(None, None, 1.5)  # type: ignore[arg-type]  # refused before the classifier is looked at


def test_evaluate_checks_its_mode():
    from classifier.training.evaluate import evaluate

    with pytest.raises(InvalidParameterError, match="The 'llm_mode' parameter of evaluate must be one of"):
        evaluate(Cascade.__new__(Cascade), load_dataset(DATA), llm_mode="orcale")  # refused before it is used
