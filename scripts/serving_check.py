"""The serving install, checked: run with the python of a venv holding `pip install 'taskrouter[proxy]'` only.

Fails unless torch, sentence-transformers and scikit-learn are absent, and the shipped model then classifies,
routes and completes with the demo config (mock replies), and the proxy hook rewrites an "auto" request.
Prints the import-to-first-decision time of this fresh process.
"""

import time

START = time.perf_counter()

import asyncio  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ABSENT = ("torch", "sentence_transformers", "sklearn", "scipy", "transformers", "model2vec", "matplotlib")
present = [m for m in ABSENT if importlib.util.find_spec(m) is not None]
if present:
    sys.exit(f"serving check: not a serving-only install, these are installed: {present}")

import classifier  # noqa: E402
from classifier.serving.cascade import Cascade  # noqa: E402

if "site-packages" not in str(Path(classifier.__file__)):
    sys.exit(f"serving check: classifier was imported from {classifier.__file__}, not from the installed package")

cascade = Cascade.load()
decision = cascade.classify("Tell me about the history of jazz")  # the static stage passes it on to MiniLM
first = time.perf_counter() - START
assert decision.label == "default" and decision.stage == "embedding", decision
print(f"import to first decision in a fresh process: {first:.2f} s ({decision.label} by {decision.stage})")
for text, label in [
    ("what is the integral of x^2 from 0 to 3?", "math"),
    ("please fix this function:\n" + "def f(x):\n    return x +\n" * 2000, "code"),
    ("write a short story about a lighthouse keeper", "creative"),
]:
    got = cascade.classify(text)
    assert got.label == label, (text[:40], got)
    print(f"classify: {text[:40]!r}... -> {got.label} by {got.stage} ({got.confidence:.3f})")

from routing import route_and_complete  # noqa: E402
from routing.config import DEMO_CONFIG  # noqa: E402

done = route_and_complete("write a haiku about the first snow", config=DEMO_CONFIG)
assert done.decision.label == "creative" and done.served_pool == "creative", (done.decision, done.served_pool)
print(f"route_and_complete: {done.decision.label} -> {done.served_pool}: {done.text!r}")

from routing.proxy import TaskRouterHook  # noqa: E402

hook = TaskRouterHook(config=DEMO_CONFIG)
request = {"model": "auto", "messages": [{"role": "user", "content": "my flask app returns 500 on POST, why?"}]}
out = asyncio.run(hook.async_pre_call_hook(None, None, request, "completion"))
assert out["model"] == "code", out["model"]
print(f"proxy hook: model auto -> {out['model']}")

import subprocess  # noqa: E402

cli = Path(sys.executable).with_name("taskrouter")
for command, extra in (("train", "train"), ("evaluate", "train"), ("report", "report")):
    done = subprocess.run([str(cli), command, "--data", "x.jsonl"] if command != "report" else [str(cli), command],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1 and f"pip install 'taskrouter[{extra}]'" in done.stderr, (command, done.stderr)
print("train, evaluate and report name the extra they need")

leaked = [m for m in ABSENT if m in sys.modules]
assert not leaked, leaked
print("serving check passed: no torch, sentence-transformers, scikit-learn or matplotlib")
