"""Two worker processes share LiteLLM cooldowns through a real Redis; without Redis each learns alone.

Each worker holds two TaskRouters over the same fake provider: "shared" (router_settings point at Redis) and
"local" (no Redis, its own deployments). The pool `fast` has a failing deployment that is always picked while it
is not cooled down, and a healthy one; `allowed_fails=1` cools the failing one on its second failure.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.integration.conftest import deployment, make_config
from tests.integration.servers import free_port

WORKER = Path(__file__).with_name("worker.py")
ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = "/usr/bin/redis-server"
QUERIES = [
    f"Recommend a good book about {topic}"
    for topic in ("birds", "rivers", "chess", "baking", "jazz", "tea", "trains", "whales", "maps", "bees")
]


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_command(port: int, *args: str) -> bytes:
    """One RESP command, the raw reply (enough for EXISTS/TTL)."""
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(payload.encode())
        return s.recv(1024)


@pytest.fixture(scope="module")
def redis_port():
    """A fresh redis-server on its own port and directory, nothing persisted; stopped afterwards."""
    binary = REDIS_SERVER if os.path.exists(REDIS_SERVER) else shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port, root = free_port(), tempfile.mkdtemp(prefix="taskrouter-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            root,
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not redis_ping(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start (exit code {proc.poll()})")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)


class Worker:
    """A `worker.py` process; `send(router, queries)` returns the outcome of each query."""

    def __init__(self, name: str, configs: dict[str, Path], log: Path) -> None:
        self.name, self.log = name, log
        env = {
            **os.environ,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": str(ROOT),
        }
        self._stderr = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), *(f"{k}={v}" for k, v in configs.items())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _reply(self, timeout: float) -> dict:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            line = None
        if line is None:
            raise AssertionError(f"worker {self.name} gave no answer; its log:\n{self.log.read_text()[-3000:]}")
        return json.loads(line)

    def wait_ready(self, timeout: float = 90) -> None:
        assert self._reply(timeout) == {"ready": True}

    def send(self, router: str, queries: list[str], timeout: float = 30) -> list[dict]:
        self.proc.stdin.write(json.dumps({"router": router, "queries": queries}) + "\n")
        self.proc.stdin.flush()
        return self._reply(timeout)["outcomes"]

    def close(self) -> None:
        """Stop the worker (LiteLLM's exit handlers take seconds, so it is terminated, then killed)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdin.close()
        self._stderr.close()


def pool_config(fake, prefix: str, **router_settings) -> dict:
    bad, good = f"{prefix}-bad", f"{prefix}-good"
    deployments = [
        deployment(fake, "fast", bad, weight=1),  # always picked while not cooled down...
        deployment(fake, "fast", good, weight=0),  # ...this one only once it is
        deployment(fake, "capable", f"{prefix}-capable"),
    ]
    return make_config(
        fake,
        deployments=deployments,
        router_settings={
            "allowed_fails": 1,
            "cooldown_time": 300,
            "fallbacks": [{"fast": ["capable"]}],
            **router_settings,
        },
    )


@pytest.fixture(scope="module")
def workers(fake, redis_port, tmp_path_factory):
    """Workers A and B, started together (imports take seconds), each with a "shared" and a "local" router."""
    tmp = tmp_path_factory.mktemp("workers")
    configs = {
        "shared": pool_config(fake, "r", redis_host="127.0.0.1", redis_port=redis_port),
        "local": pool_config(fake, "l"),
    }
    for name, config in configs.items():
        (tmp / f"{name}.json").write_text(json.dumps(config))
    fake.set(**{"r-bad": {"mode": "500"}, "l-bad": {"mode": "500"}})
    started = []
    try:
        for name in ("A", "B"):
            started.append(Worker(name, {k: tmp / f"{k}.json" for k in configs}, tmp / f"worker-{name}.log"))
        for w in started:
            w.wait_ready()
        yield started
    finally:
        for w in started:
            w.close()


def cool_down(worker: Worker, router: str, fake, bad: str) -> list[dict]:
    """Send queries from `worker` until the failing deployment is cooled down (the healthy one answers)."""
    outcomes: list[dict] = []
    for query in QUERIES:
        outcomes += worker.send(router, [query])
        if outcomes[-1].get("deployment", "").endswith("-good-id"):
            break
    assert fake.hits(bad) == 2, outcomes  # allowed_fails=1: cooled down on the second failure
    assert all(o.get("pool") in {"fast", "capable"} for o in outcomes), outcomes  # the fallback served the failures
    return outcomes


def test_a_cooldown_in_one_worker_is_respected_by_the_other_through_redis(workers, fake, redis_port):
    a, b = workers
    cool_down(a, "shared", fake, "r-bad")
    assert redis_command(redis_port, "EXISTS", "deployment:r-bad-id:cooldown") == b":1\r\n"
    outcomes = b.send("shared", QUERIES[:8])
    assert fake.hits("r-bad") == 2  # B never sent the cooled-down deployment a request
    assert outcomes == [{"pool": "fast", "deployment": "r-good-id", "fallback": False}] * 8


def test_without_redis_each_worker_cools_down_on_its_own(workers, fake):
    a, b = workers
    cool_down(a, "local", fake, "l-bad")
    outcomes = b.send("local", QUERIES[:8])
    assert fake.hits("l-bad") == 4  # B had to fail twice itself before it stopped sending there
    assert [o["pool"] for o in outcomes[:2]] == ["capable", "capable"]
    assert outcomes[2:] == [{"pool": "fast", "deployment": "l-good-id", "fallback": False}] * 6
