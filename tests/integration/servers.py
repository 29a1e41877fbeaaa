"""Throwaway database servers owned by a test: own port, own data directory, removed afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server():
    """Yield a postgresql:// URL of a fresh server, or None when PostgreSQL's binaries are missing."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        yield None
        return
    as_user: list[str] = []
    root = tempfile.mkdtemp(prefix="taskrouter-pg-")
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(root, "data"), free_port()
    try:
        subprocess.run(
            [*as_user, initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *as_user,
                pg_ctl,
                "-D",
                data,
                "-l",
                os.path.join(root, "log"),
                "-w",
                "-t",
                "30",
                "-o",
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True)
        time.sleep(0.2)
        shutil.rmtree(root, ignore_errors=True)


def live(url: str) -> bool:
    """Whether `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def stop(proc: subprocess.Popen) -> None:
    """Terminate the process group `proc` leads, then kill whatever of it is left."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the leader's children, if any survived it
    except ProcessLookupError:
        pass
    proc.wait()


@contextmanager
def litellm_proxy(workdir: Path, env: dict[str, str | None], *, timeout: float = 180) -> Iterator[str]:
    """Run `litellm --config workdir/config.yaml` on a free port (cwd `workdir`); yield its base URL, then stop it.

    `env` is added to this process's environment (None removes a variable). LITELLM_LOCAL_MODEL_COST_MAP and
    HF_HUB_OFFLINE are set; a TASKROUTER_CONFIG of the caller's is dropped, so the hook reads the config next to it.
    """
    full = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    full.pop("TASKROUTER_CONFIG", None)
    for name, value in env.items():
        if value is None:
            full.pop(name, None)
        else:
            full[name] = value
    litellm = shutil.which("litellm", path=str(Path(sys.executable).parent)) or shutil.which("litellm")
    if litellm is None:
        raise RuntimeError("the litellm command is not installed")
    port, log = free_port(), workdir / "proxy.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [litellm, "--config", str(workdir / "config.yaml"), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=full,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while not live(base + "/health/liveliness"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the proxy did not start (exit code {proc.poll()}); its log:\n{log.read_text()[-4000:]}"
                )
            time.sleep(0.25)
        yield base
    finally:
        stop(proc)
