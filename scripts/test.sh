#!/usr/bin/env bash
# Set up .venv (if needed) and run the test suite; arguments go to pytest (e.g. -m "not integration").
# The report's browser test needs Chromium: `bash scripts/setup.sh --browser` once (it is skipped otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1
VENV=${VENV:-.venv}
echo "[test] pytest $* (12 to 25 min on 2 cores, with the machine; -m \"not integration\" skips the real servers)"
"$VENV/bin/python" -m pytest -q "$@"
