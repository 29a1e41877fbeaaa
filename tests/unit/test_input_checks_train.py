"""train_cascade and select_by_folds check their extra keyword arguments, and the calibration sources, before any
work; group_sources' limit is a DataError."""

import pytest

from classifier.data import Dataset
from classifier.errors import DataError, InvalidParameterError
from classifier.training import train as train_module
from classifier.training.source_folds import MAX_SOURCES, check_source_count, group_sources
from classifier.training.train import select_by_folds, train_cascade

TEXTS = ("integrate x^2", "solve 2x = 4", "sort a list", "reverse a string")
LABELS = ("math", "math", "code", "code")
DATA = Dataset(TEXTS, LABELS, "train.jsonl")


@pytest.fixture
def no_work(monkeypatch):
    """Training's first step (the keyword rules' calibration) fails the test if it is reached."""

    def reached(*args, **kwargs):
        raise AssertionError("training began before the parameters were checked")

    monkeypatch.setattr(train_module, "KeywordRules", reached)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"embedder": None}, "embedder"),  # before: "TaskClassifier() got multiple values for keyword argument"
        ({"cv_embeddings": None}, "cv_embeddings"),
        ({"c": 1.0}, "c"),  # a typo of C
        ({"C": -1.0}, "C"),
        ({"cv": "5"}, "cv"),
        ({"encoder": "tunned"}, "encoder"),
    ],
    ids=["embedder", "fit-argument", "typo", "bad-C", "bad-cv", "bad-encoder"],
)
def test_train_cascade_refuses_an_extra_keyword_before_any_work(no_work, kwargs, name):
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter of train_cascade") as info:
        train_cascade(DATA, **kwargs)
    assert info.value.parameter == name


def test_the_refusal_names_what_train_cascade_passes_on(no_work):
    with pytest.raises(InvalidParameterError, match="passes on only TaskClassifier's C, lexical_weight") as info:
        train_cascade(DATA, embedder=None)
    assert "sets embedder" in str(info.value)


@pytest.mark.parametrize(
    ("params", "candidates", "name"),
    [
        ({}, [{"C": 1.0}, {"embedder": None}], "embedder"),  # the second candidate: checked before the first trains
        ({"selection": []}, [{"C": 1.0}], "selection"),
        ({}, [{"C": 1.0}, {"out": "m"}], "out"),
        ({}, [{"C": 1.0}, {"C": 0}], "C"),
        ({"max_escalation": 0.1}, [{"max_error": 0.05}], "max_error"),
        ({}, [{"static_max_error": 2}], "static_max_error"),
    ],
    ids=["embedder", "selection", "out", "bad-C", "both-targets", "bad-train-value"],
)
def test_select_by_folds_checks_every_candidate_before_any_work(no_work, params, candidates, name):
    calibration = Dataset(TEXTS, LABELS, "cal.jsonl", ("a", "b", "a", "b"))
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter of select_by_folds"):
        select_by_folds(DATA, calibration=calibration, candidates=candidates, **params)


def test_select_by_folds_refuses_a_candidate_that_is_not_a_dict(no_work):
    calibration = Dataset(TEXTS, LABELS, "cal.jsonl", ("a", "b", "a", "b"))
    with pytest.raises(InvalidParameterError, match="'candidates' parameter"):
        select_by_folds(DATA, calibration=calibration, candidates=["C=1"])  # type: ignore[list-item]


def test_too_many_sources_are_a_data_error_naming_the_count_and_file(no_work):
    """Before: a bare ValueError from group_sources, reached after all training."""
    n = MAX_SOURCES + 1
    texts = tuple(f"query {i}" for i in range(2 * n))
    labels = ("math", "code") * n
    calibration = Dataset(texts, labels, "cal.jsonl", tuple(f"s{i // 2}" for i in range(2 * n)))
    match = rf"cal\.jsonl: the rows have {n} distinct sources, too many .* \(at most {MAX_SOURCES}\)"
    with pytest.raises(DataError, match=match) as info:
        train_cascade(DATA, calibration=calibration)
    assert info.value.field == "source" and info.value.path == "cal.jsonl"
    with pytest.raises(DataError, match=match):
        select_by_folds(DATA, calibration=calibration, candidates=[{"C": 1.0}])
    with pytest.raises(DataError, match=f"the rows have {n} distinct sources"):
        group_sources(calibration.sources, labels)
    check_source_count([f"s{i}" for i in range(MAX_SOURCES)])  # 12 are fine
