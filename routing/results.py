"""What `route_and_complete` returns."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, NoReturn

from classifier.results import Decision

__all__ = ["RoutedCompletion", "RoutedStream"]


@dataclass(frozen=True)
class RoutedCompletion:
    """A completed request: the LiteLLM response and how it was routed."""

    response: Any
    decision: Decision
    requested_pool: str
    served_pool: str | None
    deployment: str | None
    fallback: bool
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_s: float

    @property
    def text(self) -> str:
        """The assistant's reply."""
        return self.response.choices[0].message.content or ""

    @classmethod
    def of(cls, response: Any, event: Any) -> RoutedCompletion:
        """The completion `response` with how its request's `event` (a `routing.events.RequestEvent`) went."""
        return cls(response, **{f.name: getattr(event, f.name) for f in fields(cls) if f.name != "response"})


@dataclass(frozen=True)
class RoutedStream:
    """A streaming request: the decision at once, the chunks as LiteLLM yields them."""

    stream: Any
    decision: Decision
    requested_pool: str
    on_end: Callable[[Any, Any, BaseException | None], BaseException | None] | None = field(
        default=None, repr=False, compare=False
    )
    """Called with (stream, last chunk, error) when the stream was read to its end, failed while being read, or was
    left half-read (closed, collected or cancelled: the error is `GeneratorExit` or `CancelledError`); the router
    records the request's event then. For an error it returns what to raise in its place (the router's typed error
    for a provider's), or None to raise it as it is."""

    def __iter__(self) -> Iterator[Any]:
        if self.on_end is None:
            return iter(self.stream)
        return self._watched(self.on_end)

    def __aiter__(self) -> AsyncIterator[Any]:
        if self.on_end is None:
            return self.stream.__aiter__()
        return self._awatched(self.on_end)

    def _watched(self, on_end: Callable[[Any, Any, BaseException | None], BaseException | None]) -> Iterator[Any]:
        last = None
        try:
            for last in self.stream:
                yield last
        except Exception as exc:
            raise_instead(on_end(self.stream, last, exc), exc)
        except BaseException as exc:  # left half-read or cancelled: the provider was paid all the same
            on_end(self.stream, last, exc)
            raise
        on_end(self.stream, last, None)

    async def _awatched(
        self, on_end: Callable[[Any, Any, BaseException | None], BaseException | None]
    ) -> AsyncIterator[Any]:
        last = None
        try:
            async for last in self.stream:
                yield last
        except Exception as exc:
            raise_instead(on_end(self.stream, last, exc), exc)
        except BaseException as exc:  # left half-read or cancelled: the provider was paid all the same
            on_end(self.stream, last, exc)
            raise
        on_end(self.stream, last, None)

    @property
    def served_pool(self) -> str | None:
        hidden = getattr(self.stream, "_hidden_params", None) or {}
        return (hidden.get("additional_headers") or {}).get("x-litellm-model-group") or self.requested_pool

    @property
    def deployment(self) -> str | None:
        return (getattr(self.stream, "_hidden_params", None) or {}).get("model_id")


def raise_instead(error: BaseException | None, exc: BaseException) -> NoReturn:
    """Raise `error` (from `exc`) where one was made for it, else `exc` itself."""
    if error is None or error is exc:
        raise exc
    raise error from exc
