"""Every LiteLLM exception maps to one of this library's typed errors, in one place."""

import inspect

import pytest

from routing import _litellm, errors

litellm = _litellm.litellm
LITELLM_ERRORS = sorted(
    {
        obj
        for name in dir(litellm.exceptions)
        if inspect.isclass(obj := getattr(litellm.exceptions, name))
        and issubclass(obj, Exception)
        and obj.__module__.startswith("litellm")
    },
    key=lambda c: c.__name__,
)


def instance(cls):
    """An instance of a LiteLLM exception class, whatever its constructor wants."""
    obj = cls.__new__(cls)
    obj.status_code, obj.message = getattr(cls, "status_code", None), "x"
    return obj


def test_the_module_lists_the_exception_classes():
    assert len(LITELLM_ERRORS) >= 20


@pytest.mark.parametrize("cls", LITELLM_ERRORS, ids=lambda c: c.__name__)
def test_every_litellm_exception_maps_to_a_completion_error(cls):
    """By an entry of the mapping: `map_exception`'s catch-all would turn an unmapped one into an outage."""
    exc = instance(cls)
    ours = _litellm.error_type(exc)
    assert ours is not None, f"{cls.__name__} has no entry in routing/_litellm.py's mapping"
    err = _litellm.map_exception(exc, pool="math", fallbacks_configured=False)
    assert type(err) is ours and err.pool == "math"


def test_no_entry_of_the_mapping_is_hidden_behind_an_earlier_base_class():
    """The first matching entry wins, so a subclass listed after its base would never be used."""
    entries = [theirs for theirs, _ in _litellm._MAPPING]
    hidden = [
        f"{later.__name__} after {earlier.__name__}"
        for i, earlier in enumerate(entries)
        for later in entries[i + 1 :]
        if issubclass(later, earlier)
    ]
    assert not hidden


@pytest.mark.parametrize(
    ("cls", "ours"),
    [
        (litellm.ContextWindowExceededError, errors.ContextWindowExceeded),
        (litellm.Timeout, errors.CompletionTimeout),
        (litellm.RateLimitError, errors.RateLimited),
        (litellm.RouterRateLimitError, errors.RateLimited),
        (litellm.AuthenticationError, errors.AuthenticationFailed),
        (litellm.InternalServerError, errors.ProviderUnavailable),
        (litellm.ServiceUnavailableError, errors.ProviderUnavailable),
        (litellm.APIConnectionError, errors.ProviderUnavailable),
        (litellm.BadRequestError, errors.BadRequest),
        (litellm.NotFoundError, errors.BadRequest),
    ],
)
def test_specific_mappings(cls, ours):
    assert type(_litellm.map_exception(instance(cls), pool="p", fallbacks_configured=False)) is ours


def test_failure_after_fallbacks_is_pools_exhausted_but_request_errors_are_not():
    err = _litellm.map_exception(instance(litellm.InternalServerError), pool="p", fallbacks_configured=True)
    assert isinstance(err, errors.PoolsExhausted) and err.cause == "ProviderUnavailable"
    bad = _litellm.map_exception(instance(litellm.BadRequestError), pool="p", fallbacks_configured=True)
    assert type(bad) is errors.BadRequest


def test_an_unknown_exception_is_not_reported_as_a_provider_outage():
    err = _litellm.map_exception(RuntimeError("something new"), pool="p", fallbacks_configured=False)
    assert type(err) is errors.CompletionError and not isinstance(err, errors.ProviderUnavailable)
    after = _litellm.map_exception(RuntimeError("something new"), pool="p", fallbacks_configured=True)
    assert isinstance(after, errors.PoolsExhausted) and after.cause == "CompletionError"
