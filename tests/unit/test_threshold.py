import numpy as np
import pytest

from classifier.errors import InvalidParameterError
from classifier.training.threshold import choose_threshold, threshold_curve

CONF = np.array([0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99, 0.999])
OK = np.array([False, False, True, True, True, True, True, True, True, True])


def test_max_escalation_escalates_at_most_that_share():
    t = choose_threshold(CONF, OK, max_escalation=0.2)
    assert (CONF < t).mean() <= 0.2 and t == 0.6


def test_max_error_gives_lowest_threshold_within_target():
    t = choose_threshold(CONF, OK, max_error=0.0)
    assert t == 0.6 and (~OK[CONF >= t]).sum() == 0
    assert choose_threshold(CONF, OK, max_error=0.12) == 0.5


def test_curve_and_argument_checks():
    rows = threshold_curve(CONF, OK)
    assert rows[0]["escalation_rate"] == 0 and rows[0]["accepted_error"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="exactly one"):
        choose_threshold(CONF, OK)
    with pytest.raises(ValueError, match="max_escalation must be in"):
        choose_threshold(CONF, OK, max_escalation=2)


def test_with_nothing_held_out_nothing_is_escalated_and_nothing_unproven_accepted():
    empty = np.array([])
    assert choose_threshold(empty, empty.astype(bool), max_escalation=0.1) == 0.0
    assert choose_threshold(empty, empty.astype(bool), max_error=0.01) > 1.0


def test_nan_confidences_and_mismatched_flags_are_refused():
    """Before: a NaN sorted last and became the max_escalation threshold (nothing accepted, all escalated)."""
    conf = np.array([0.2, 0.9, np.nan, 0.95])
    with pytest.raises(InvalidParameterError, match="'confidence'"):
        choose_threshold(conf, np.ones(4, dtype=bool), max_escalation=0.5)
    with pytest.raises(InvalidParameterError, match="'correct'"):
        choose_threshold(CONF, OK[:-1], max_error=0.1)
