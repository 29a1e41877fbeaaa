"""What `route_and_complete` returns."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class RoutedStream:
    """A streaming request: the decision at once, the chunks as LiteLLM yields them."""

    stream: Any
    decision: Decision
    requested_pool: str

    def __iter__(self) -> Iterator[Any]:
        return iter(self.stream)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.stream.__aiter__()

    @property
    def served_pool(self) -> str | None:
        hidden = getattr(self.stream, "_hidden_params", None) or {}
        return (hidden.get("additional_headers") or {}).get("x-litellm-model-group") or self.requested_pool

    @property
    def deployment(self) -> str | None:
        return (getattr(self.stream, "_hidden_params", None) or {}).get("model_id")
