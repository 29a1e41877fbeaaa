"""A closed router leaves no HTTP client of its own in LiteLLM's process-wide client cache.

LiteLLM caches an async client per event loop for 10 minutes; a router with a private loop (cost-based routing)
closes the clients that loop opened, so their keep-alive connections close with the router.
"""

from __future__ import annotations

from routing import TaskRouter
from routing._litellm import litellm
from tests.integration.conftest import make_config

MATH = "Solve for x: 3x + 7 = 22, and show each step."


def cached_clients(url: str) -> dict:
    """LiteLLM's cached clients for the fake provider at `url` (its address is part of every key)."""
    return {k: v for k, v in list(litellm.in_memory_llm_clients_cache.cache_dict.items()) if url in str(k)}


def test_closing_a_router_closes_the_clients_its_loop_opened(provider, shipped_cascade):
    config = make_config(provider, router_settings={"routing_strategy": "cost-based-routing"})
    before = set(cached_clients(provider.url))
    router = TaskRouter(config, cascade=shipped_cascade)
    try:
        router.complete(MATH)
        opened = {k: v for k, v in cached_clients(provider.url).items() if k not in before}
        assert opened, "the request went through a client LiteLLM cached for the router's loop"
    finally:
        router.close()
    assert not set(cached_clients(provider.url)) - before
    assert all(client.is_closed() for client in opened.values())
