"""The scope check: chosen out-of-fold from the training rows alone, refusing bad targets."""

import numpy as np
import pytest

from classifier.errors import InvalidParameterError
from classifier.serving.scope import Scope, top_k_similarity
from classifier.training.fit_scope import KS, fit_scope


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _clusters(rng: np.random.Generator, centres: np.ndarray, n: int, spread: float = 0.15) -> np.ndarray:
    return _unit(np.repeat(centres, n, axis=0) + spread * rng.standard_normal((len(centres) * n, centres.shape[1])))


@pytest.fixture
def rows():
    rng = np.random.default_rng(0)
    centres = _unit(rng.standard_normal((4, 32)))
    return _clusters(rng, centres[:3], 30), np.repeat(["a", "b", "c"], 30), centres[3], rng


def test_top_k_is_the_mean_of_the_k_largest_cosines():
    examples = _unit(np.eye(4, dtype=np.float32) + 0.01)
    query = examples[:1]
    sims = (query @ examples.T)[0]
    got = top_k_similarity(query, examples, (1, 3, 10))
    assert got[1][0] == pytest.approx(sims.max())
    assert got[3][0] == pytest.approx(np.sort(sims)[-3:].mean())
    assert got[10][0] == pytest.approx(sims.mean())  # fewer examples than k: all of them


def test_a_far_cluster_is_out_of_scope_and_held_out_rows_mostly_in(rows):
    vectors, labels, far_centre, rng = rows
    scope = fit_scope(vectors, labels, max_fallback=0.05)
    assert scope is not None and scope.k in KS and -1 < scope.threshold < 1
    near = _clusters(rng, vectors[[0, 30, 60]], 20, spread=0.05)
    far = _clusters(rng, far_centre[None, :], 50)
    assert (scope.similarity(far, vectors) < scope.threshold).mean() > 0.9
    assert (scope.similarity(near, vectors) < scope.threshold).mean() < 0.1


def test_a_looser_target_gives_a_higher_threshold(rows):
    vectors, labels, _, _ = rows
    strict, loose = (fit_scope(vectors, labels, max_fallback=t) for t in (0.02, 0.2))
    assert strict is not None and loose is not None and strict.threshold < loose.threshold


def test_no_scope_when_a_label_cannot_be_held_out(rows):
    vectors, labels, _, _ = rows
    labels = labels.astype(object)
    labels[0] = "alone"
    assert fit_scope(vectors, labels) is None


@pytest.mark.parametrize("bad", [0, 1, -0.1, 1.5, True, "0.1"], ids=repr)
def test_a_bad_target_names_the_parameter(rows, bad):
    vectors, labels, _, _ = rows
    with pytest.raises(InvalidParameterError, match="max_fallback"):
        fit_scope(vectors, labels, max_fallback=bad)


def test_the_scope_survives_a_round_trip(rows):
    vectors, labels, _, _ = rows
    scope = fit_scope(vectors, labels)
    assert scope is not None and Scope.from_dict(scope.to_dict()) == scope
