"""Label priors: EM finds a known mix from a calibrated head's probabilities; bounds hold; bad priors are named."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifier.errors import InvalidParameterError
from classifier.serving.priors import adjust, bounded, check_priors, estimate_priors


def _calibrated(mix: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Posteriors under a uniform training mix for `n` queries drawn with label mix `mix` from Gaussians in 1-D."""
    rng = np.random.default_rng(seed)
    means = np.arange(len(mix)) * 1.5
    y = rng.choice(len(mix), size=n, p=mix)
    x = rng.normal(means[y], 1.0)
    like = np.exp(-0.5 * (x[:, None] - means[None, :]) ** 2)
    return like / like.sum(axis=1, keepdims=True)


def test_em_recovers_the_traffic_mix():
    mix = np.array([0.1, 0.15, 0.1, 0.65])
    proba = _calibrated(mix, 20_000)
    uniform = np.full(4, 0.25)
    naive = proba.mean(axis=0)  # the mean posterior is pulled toward the training mix
    estimate = estimate_priors(proba, uniform)
    assert np.abs(estimate - mix).max() < 0.02
    assert np.abs(naive - mix).max() > np.abs(estimate - mix).max()


def test_adjusted_posteriors_are_more_accurate_on_skewed_traffic():
    mix = np.array([0.1, 0.1, 0.1, 0.7])
    rng = np.random.default_rng(1)
    means = np.arange(4) * 1.5
    y = rng.choice(4, size=20_000, p=mix)
    like = np.exp(-0.5 * (rng.normal(means[y], 1.0)[:, None] - means[None, :]) ** 2)
    proba = like / like.sum(axis=1, keepdims=True)
    before = (proba.argmax(axis=1) == y).mean()
    after = (adjust(proba, mix / 0.25).argmax(axis=1) == y).mean()
    assert after > before + 0.05


def test_bounds_hold_a_burst_near_the_training_mix():
    train = np.full(4, 0.25)
    burst = np.array([0.97, 0.01, 0.01, 0.01])
    few = bounded(burst, train, n=50)
    assert few[0] < 0.35  # 50 queries of one kind move the mix a little
    many = bounded(burst, train, n=1_000_000)
    assert many[0] <= 0.75 / many.sum() + 1e-9 and many.min() >= 0.25 / 3 / 1.5  # at most 3x, at least 1/3
    assert np.isclose(many.sum(), 1.0)
    with pytest.raises(InvalidParameterError, match="'max_ratio' parameter"):
        bounded(burst, train, n=10, max_ratio=0.5)


def test_a_burst_past_the_bound_is_held_within_it_after_normalising():
    """Before: each share was clipped to [train/3, 3 train] and then normalised, which pushed the clipped shares
    back out: here math's share came out 3.47 times its training one."""
    train = np.array([1089, 1163, 1625, 965]) / 4842
    held = bounded(np.array([0.0, 0.0, 0.0, 1.0]), train, n=1e6)
    ratio = held / train
    assert held.sum() == pytest.approx(1.0)
    assert ratio[3] == pytest.approx(3.0) and np.all(ratio <= 3.0 + 1e-12) and np.all(ratio >= 1 / 3 - 1e-12)
    assert np.allclose(ratio[:3], ratio[0])  # the others share what is left in their shrunk proportions
    # no pseudo-count: the share of 0 cannot be scaled up, yet must rise for the other to stay within 2x
    assert np.allclose(
        bounded(np.array([0.0, 1.0]), np.array([0.8, 0.2]), n=1, pseudo_count=0, max_ratio=2), [0.6, 0.4]
    )


def test_a_mix_within_the_bound_is_only_normalised():
    """`benchmarks/priors_mix.py` bounds an estimate that is within 3x: its figures do not move."""
    train = np.array([0.2249, 0.2402, 0.3356, 0.1993])
    estimate = np.array([0.1276, 0.1047, 0.6525, 0.1151])
    mixed = (1818 * estimate + 500 * train) / 2318
    assert np.array_equal(bounded(estimate, train, n=1818), mixed / mixed.sum())


shares = st.floats(min_value=0.0, max_value=1.0)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=8).flatmap(
        lambda k: st.tuples(
            st.lists(st.floats(min_value=1e-3, max_value=1.0), min_size=k, max_size=k),
            st.lists(shares, min_size=k, max_size=k),
        )
    ),
    st.floats(min_value=0.0, max_value=1e7),
    st.floats(min_value=0.0, max_value=1e4) | st.just(0.0),  # no pseudo-count: an estimate's 0 stays 0 when shrunk
    st.floats(min_value=1.0, max_value=20.0) | st.just(1.0),
)
def test_bounded_shares_sum_to_one_within_the_ratio(arrays, n, pseudo_count, max_ratio):
    train, estimate = (np.array(a) for a in arrays)
    held = bounded(estimate, train, n=n, pseudo_count=pseudo_count, max_ratio=max_ratio)
    train = train / train.sum()
    assert held.sum() == pytest.approx(1.0, abs=1e-9)
    ratio = held / train
    assert np.all(ratio <= max_ratio * (1 + 1e-9)) and np.all(ratio >= (1 - 1e-9) / max_ratio)
    mixed = n * estimate + pseudo_count * train
    mixed = mixed / mixed.max() if mixed.max() > 0 else mixed
    inside = (ratio < max_ratio * (1 - 1e-9)) & (ratio > (1 + 1e-9) / max_ratio) & (mixed > 1e-12)
    if inside.sum() > 1:  # the shares off the bounds keep their shrunk proportions (one scale for all of them)
        scale = held[inside] / mixed[inside]
        assert np.allclose(scale, scale[0], rtol=1e-6)


@pytest.mark.parametrize(
    ("priors", "match"),
    [
        ({"a": 0.5}, "missing: \\['b'\\]"),
        ({"a": 0.5, "b": 0.4, "c": 0.1}, "unknown: \\['c'\\]"),
        ({"a": 0.5, "b": -1}, "'priors.b' parameter must be a positive finite number"),
        ({"a": 0.5, "b": True}, "'priors.b' parameter"),
    ],
)
def test_bad_priors_name_the_field(priors, match):
    with pytest.raises(InvalidParameterError, match=match):
        check_priors(priors, ["a", "b"])


def test_priors_are_normalised():
    assert check_priors({"a": 2, "b": 6}, ["a", "b"]) == {"a": 0.25, "b": 0.75}


def test_numpy_shares_are_numbers_too():
    """Before: np.float32(0.25) was refused as not 'a positive number' (it is not a Python float)."""
    assert check_priors({"a": np.float32(0.25), "b": np.int64(3)}, ["a", "b"]) == {"a": 0.25 / 3.25, "b": 3 / 3.25}
    with pytest.raises(InvalidParameterError, match="'priors.a' parameter"):
        check_priors({"a": np.bool_(True), "b": 1}, ["a", "b"])


def test_a_cascade_under_priors_records_them_and_leans_toward_them(small_model_dir):
    from classifier.serving.cascade import Cascade

    plain = Cascade.load(small_model_dir)
    labels = plain.labels
    skewed = plain.with_priors({label: (0.7 if label == "default" else 0.1) for label in labels})
    q = "tell me about the history of the violin"
    a, b = plain.classify(q), skewed.classify(q)
    assert a.priors is None and dict(b.priors)["default"] == pytest.approx(0.7)
    assert b.to_dict()["priors"]["default"] == pytest.approx(0.7)
    pa = plain.classifier.predict_proba([q])[0]
    stage = skewed.stage("embedding")
    assert stage is not None and stage.prior_weights is not None
    pb = adjust(pa[None, :], stage.prior_weights)[0]
    assert pb[labels.index("default")] > pa[labels.index("default")]
    with pytest.raises(InvalidParameterError, match="missing"):
        plain.with_priors({"default": 1.0})


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: check_priors({"a": 1e308, "b": 1e308}, ["a", "b"]), "sum is a finite number"),
        (lambda: check_priors({"a": 10**400, "b": 1}, ["a", "b"]), "'priors.a' parameter must be a positive finite"),
        (lambda: check_priors({"a": float("inf"), "b": 1}, ["a", "b"]), "'priors.a' parameter"),
        (lambda: check_priors({"a": "1", "b": 1}, ["a", "b"]), "'priors.a' parameter"),
        (lambda: estimate_priors(np.full((3, 2), 0.5), np.array([0.5, 0.5]), sample_weight=np.zeros(3)), "weight"),
        (lambda: estimate_priors(np.full((3, 2), 0.5), np.array([0.5, 0.5]), sample_weight=np.ones(2)), "weight"),
        (lambda: estimate_priors(np.full((3, 2), 0.5), np.array([1.0, 0.0])), "'train' parameter"),
        (lambda: estimate_priors(np.array([[0.5, np.nan]]), np.array([0.5, 0.5])), "'proba' parameter"),
        (lambda: bounded(np.array([0.5, 0.5]), np.array([0.5, 0.5]), n=float("inf")), "'n' parameter"),
        (lambda: bounded(np.array([0.5, 0.5]), np.array([0.5, 0.5]), n=float("nan")), "'n' parameter"),
    ],
    ids=[
        *("overflowing-sum", "overflowing-int", "inf", "str", "zero-weights", "weights-mis-sized"),
        *("zero-training-share", "nan-proba", "inf-n", "nan-n"),
    ],
)
def test_inputs_that_would_give_nan_priors_are_refused(call, match):
    """Each of these used to return NaN or zeros (then every re-weighted probability is NaN)."""
    with pytest.raises(InvalidParameterError, match=match):
        call()
