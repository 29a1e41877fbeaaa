#!/usr/bin/env bash
# Lint, format check and type check of the project's source (ruff and mypy, configured in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PATHS=(classifier routing tests benchmarks data/build)
echo "[lint] ruff check"; "$VENV/bin/ruff" check "${PATHS[@]}"
echo "[lint] ruff format --check"; "$VENV/bin/ruff" format --check "${PATHS[@]}"
echo "[lint] mypy classifier routing"; "$VENV/bin/mypy"
