"""A taskrouter worker process for the multi-worker tests: `python worker.py NAME=CONFIG.json ...`.

Builds one `TaskRouter` per NAME (all sharing one cascade), prints `{"ready": true}`, then answers each JSON line
`{"router": NAME, "queries": [...]}` on stdin with one JSON line: the outcome of each query, completed in order.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def outcome(router, query: str) -> dict:
    from classifier.errors import TaskRouterError

    try:
        r = router.complete(query)
    except TaskRouterError as exc:
        return {"error": type(exc).__name__}
    return {"pool": r.served_pool, "deployment": r.deployment, "fallback": r.fallback}


def main(argv: list[str]) -> None:
    from classifier.serving.cascade import Cascade
    from routing import TaskRouter

    cascade = Cascade.load()
    routers = {}
    for arg in argv:
        name, _, path = arg.partition("=")
        with open(path, encoding="utf-8") as f:
            routers[name] = TaskRouter(json.load(f), cascade=cascade)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        router = routers[command["router"]]
        print(json.dumps({"outcomes": [outcome(router, q) for q in command["queries"]]}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
