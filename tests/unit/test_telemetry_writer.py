"""Telemetry waits for the events LiteLLM will log, whichever comes first: the event or the expectation."""

from datetime import UTC, datetime

from routing.telemetry import TelemetryCallback, TelemetryStore


def payload(request_id: str) -> dict:
    """The fields of LiteLLM's callback kwargs that the telemetry callback reads."""
    record = {
        "request_id": request_id,
        "label": "math",
        "stage": "heuristic",
        "confidence": 1.0,
        "escalated": False,
        "requested_pool": "math",
        "router_id": "r",
    }
    return {
        "litellm_params": {"metadata": {"taskrouter": record}},
        "standard_logging_object": {"trace_id": f"trace-{request_id}", "model_group": "math"},
    }


def test_an_event_logged_before_it_was_expected_is_not_waited_for(tmp_path):
    store = TelemetryStore(f"sqlite:///{tmp_path / 'e.db'}")
    cb = TelemetryCallback(store, router_id="r")
    now = datetime.now(UTC)
    cb.log_success_event(payload("a"), None, now, now)  # LiteLLM's worker thread can win the race
    cb.expect("a", "success")
    assert cb.flush(timeout=5)  # False had it waited for "a": an expectation not met by then is reported
    assert len(store.events()) == 1
    cb.close()


def test_an_event_that_never_comes_is_waited_for_once(tmp_path):
    cb = TelemetryCallback(TelemetryStore(f"sqlite:///{tmp_path / 'e.db'}"), router_id="r")
    cb.expect("lost", "success")
    assert cb.flush(timeout=0.3) is False
    assert cb.flush(timeout=5)  # not waited for again: the second flush has nothing missing
    cb.close()
