#!/usr/bin/env bash
# Set up .venv (if needed) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1
.venv/bin/python -m pytest -q "$@"
