"""TaskClassifier with the real MiniLM embedder: fit/predict, custom labels, determinism."""

import numpy as np
import pytest
from sklearn.utils.validation import NotFittedError

from classifier import InvalidParameterError, LabelError, QueryError, TaskClassifier


@pytest.fixture(scope="module")
def fitted(small_data):
    return TaskClassifier(progress=False).fit(small_data.texts, small_data.labels)


def test_fit_predict_and_proba(fitted):
    assert fitted.classes_.tolist() == ["code", "creative", "default", "math"]
    proba = fitted.predict_proba(["solve 3x + 5 = 20 for x", "write a sonnet about the sea"])
    assert proba.shape == (2, 4) and np.allclose(proba.sum(axis=1), 1)
    assert fitted.predict(["solve 3x + 5 = 20 for x", "write a sonnet about the sea"]).tolist() == ["math", "creative"]
    assert 0.05 <= fitted.temperature_ <= 20
    assert fitted.cv_proba_.shape == (240, 4)


def test_user_label_set_including_binary():
    texts = [
        "my invoice is wrong",
        "refund my last payment",
        "charged twice this month",
        "update my card",
        "the app crashes on login",
        "cannot reset my password",
        "page does not load",
        "error 500 on checkout",
    ]
    labels = ["billing"] * 4 + ["tech"] * 4
    clf = TaskClassifier(cv=2, progress=False).fit(texts, labels)
    assert clf.classes_.tolist() == ["billing", "tech"] and clf.coef_.shape[0] == 1
    assert clf.predict_proba(["why was I billed twice?"]).shape == (1, 2)


def test_training_is_deterministic(small_data):
    a = TaskClassifier(progress=False).fit(small_data.texts, small_data.labels)
    b = TaskClassifier(progress=False).fit(small_data.texts, small_data.labels)
    assert np.array_equal(a.coef_, b.coef_) and a.temperature_ == b.temperature_


@pytest.mark.parametrize(
    ("X", "y", "error", "match"),
    [
        (["a", "b", "c"], ["x", "x", "y"], LabelError, r"fewer than 2 examples: \['y'\]"),
        (["a", "b"], ["x", "x"], LabelError, "at least 2 distinct labels"),
        (["a", "  ", "c", "d"], ["x", "x", "y", "y"], QueryError, r"X\[1\]: must not be empty"),
        (["a", 7, "c", "d"], ["x", "x", "y", "y"], QueryError, r"X\[1\]: must be a string"),
        ("abcd", ["x", "x", "y", "y"], TypeError, "X must be a sequence of strings"),
        (["a", "b", "c", "d"], ["x", "x", "y", "y", "y"], InvalidParameterError, "one label per text of X"),
    ],
    ids=["rare-label", "one-label", "blank", "non-string", "bare-string", "lengths"],
)
def test_fit_rejects_bad_input(X, y, error, match):
    with pytest.raises(error, match=match):
        TaskClassifier(progress=False).fit(X, y)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"C": -1}, "The 'C' parameter of TaskClassifier must be a float > 0. Got -1 instead."),
        ({"C": "4"}, "The 'C' parameter of TaskClassifier must be a float > 0. Got '4' instead."),
        ({"C": float("nan")}, "'C' parameter of TaskClassifier must be a float > 0. Got nan"),
        ({"cv": None}, "The 'cv' parameter of TaskClassifier must be an int >= 0. Got None instead."),
        ({"n_features": 2.0**15}, "The 'n_features' parameter of TaskClassifier must be an int >= 1."),
        ({"max_iter": True}, "The 'max_iter' parameter of TaskClassifier must be an int >= 1. Got True"),
        ({"random_state": -1}, "The 'random_state' parameter of TaskClassifier must be an int in [0, "),
        ({"encoder": "large"}, "The 'encoder' parameter of TaskClassifier must be one of ['base', 'tuned']"),
    ],
    ids=["negative", "string", "nan", "none", "float-count", "bool-count", "negative-seed", "unknown-encoder"],
)
def test_bad_params_are_named_before_any_work(params, message):
    from classifier.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError) as info:
        TaskClassifier(**params).fit(["a", "b", "c", "d"], ["x", "x", "y", "y"])
    assert message in str(info.value)


def test_bad_params_and_unfitted():
    with pytest.raises(NotFittedError):
        TaskClassifier().predict_proba(["hello"])


def test_predict_rejects_bad_queries(fitted):
    with pytest.raises(QueryError, match=r"X\[0\]: must not be empty"):
        fitted.predict([""])
    with pytest.raises(QueryError, match="the limit is"):
        fitted.predict(["x" * 200_000])
