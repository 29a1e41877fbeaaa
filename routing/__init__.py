"""taskrouter's routing: classify a query, pick its LiteLLM pool, complete."""
