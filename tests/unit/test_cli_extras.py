"""Commands that need what the serving install leaves out say which extra to install, in one line."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

RUN = """
import sys
for name in sys.argv[2:]:
    sys.modules[name] = None  # as if not installed
sys.argv = ["taskrouter", *sys.argv[1].split()]
from routing.cli import main
main()
"""


@pytest.mark.parametrize(
    ("command", "hidden", "needs", "extra"),
    [
        ("train --data x.jsonl", ["sklearn"], "sklearn", "train"),
        ("evaluate --data x.jsonl", ["matplotlib"], "matplotlib", "train"),
        ("report", ["matplotlib"], "matplotlib", "report"),
    ],
)
def test_a_missing_extra_is_named(command, hidden, needs, extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    r = subprocess.run(
        [sys.executable, "-c", RUN, command, *hidden], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 1, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: `taskrouter {command.split()[0]}` needs {needs}")
    assert line.endswith(f"pip install 'taskrouter[{extra}]'")
