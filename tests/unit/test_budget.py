"""The escalation budget: the cap holds in every window, the least confident go first, bad settings are named."""

import threading

import numpy as np
import pytest

from classifier.errors import InvalidParameterError
from classifier.serving.budget import EscalationBudget


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"share": 0}, "'share' parameter"),
        ({"share": 1.5}, "'share' parameter"),
        ({"share": True}, "'share' parameter"),
        ({"share": 0.1, "window": 0}, "'window' parameter"),
        ({"share": 0.1, "window": 10, "warmup": 11}, "'warmup' parameter"),
        ({"share": 0.1, "warmup": 2.5}, "'warmup' parameter"),
        ({"share": 0.1, "window": 2.5}, "'window' parameter"),
    ],
)
def test_bad_settings_name_the_field(kwargs, field):
    share = kwargs.pop("share")
    with pytest.raises(InvalidParameterError, match=field):
        EscalationBudget(share, **kwargs)


def test_the_cap_holds_in_every_window_and_the_least_confident_go_first():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(size=20_000)
    below = confidence < 0.6  # six queries in ten would escalate on the threshold alone
    budget = EscalationBudget(0.1, window=500, warmup=50)
    escalated = np.array(budget.admit(confidence.tolist(), below.tolist()))
    after = escalated[50:]
    windows = np.convolve(after, np.ones(500, dtype=int), mode="valid")
    assert windows.max() <= 50  # never more than a tenth of any 500 in a row
    assert 0.08 < after.mean() <= 0.1
    assert confidence[50:][after].max() < 0.2  # by rank: not the first ones below the threshold that came along
    assert budget.escalated_share <= 0.1


def test_the_warm_up_is_a_tenth_of_the_window_by_default():
    assert EscalationBudget(0.1, window=200).warmup == 20 and EscalationBudget(0.5, window=5).warmup == 1


def test_under_the_budget_every_query_below_the_threshold_escalates():
    rng = np.random.default_rng(1)
    confidence = np.where(rng.uniform(size=5_000) < 0.05, 0.3, 0.99)
    below = confidence < 0.5
    escalated = EscalationBudget(0.1, window=1000, warmup=100).admit(confidence.tolist(), below.tolist())
    assert escalated == below.tolist()


def test_callers_on_several_threads_share_one_window():
    """Not a race detector: it checks that every call lands in the one window and the cap spans all callers."""
    budget = EscalationBudget(0.1, window=4000, warmup=100)
    results: list[list[bool]] = []

    def worker(seed: int) -> None:
        confidence = np.random.default_rng(seed).uniform(size=1000) * 0.5  # every one below a 0.5 threshold
        results.append(budget.admit(confidence.tolist(), [True] * 1000))

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(sum(r) for r in results)
    assert budget.seen == 4000 and budget.escalated_share == total / 4000
    assert 100 <= total <= 0.1 * 4000  # the warm-up's hundred count against the cap too
