#!/usr/bin/env bash
# Create .venv and install taskrouter with its test and proxy extras. Torch goes first as the local CPU wheel, so
# that sentence-transformers does not pull several GB of CUDA packages.
#
#   bash scripts/setup.sh              # the venv (skipped when pyproject.toml and this script are unchanged)
#   bash scripts/setup.sh --browser    # also Debian's Chromium for the report's browser test (root, apt-get)
#
# VENV=path picks another venv folder (default .venv); PYTHON=python3.x the interpreter that creates it.
# TORCH_INDEX_URL=url takes torch from that index: pip's configured one gives the CPU build on this project's
# machines, but PyPI's Linux torch brings the CUDA packages; https://download.pytorch.org/whl/cpu has CPU builds.
set -euo pipefail
cd "$(dirname "$0")/.."
BROWSER=0
for arg in "$@"; do
  case "$arg" in
    --browser) BROWSER=1 ;;
    *) echo "usage: bash scripts/setup.sh [--browser]" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
START=$SECONDS
say() { echo "[setup +$((SECONDS - START))s] $*"; }
# pip without -q: each package shows as it is collected. Left out: "already satisfied" lines, and the warnings of a
# pip config whose extra index folders lack a package (two per package on some machines).
pip_install() { "$VENV/bin/python" -m pip install --disable-pip-version-check "$@" 2>&1 \
  | sed -u -e '/^Requirement already satisfied/d' -e "/^WARNING: Location '.*' is ignored: it is neither a/d"; }

STAMP="$VENV/.taskrouter-setup"
WANT=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ]; then
  say "$VENV is up to date with pyproject.toml: no pip run (delete $STAMP to force one)"
else
  [ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PY" -m venv "$VENV"; }
  say "upgrading pip (a few seconds)"
  pip_install -q --upgrade pip
  say "installing torch 2.13.0, CPU build (about 200 MB; about a minute, the last 40 s silent while pip unpacks it)"
  pip_install "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
  say "installing taskrouter -e .[train,test,proxy] and about 150 dependencies (about 2 min from a local index, more" \
      "when downloading; the last step, 'Installing collected packages', is silent for 1-2 min)"
  pip_install -e ".[train,test,proxy]"
  echo "$WANT" > "$STAMP"
  say "installed"
fi

if [ "$BROWSER" = 1 ]; then
  # The report test opens the HTML report in a real browser: Debian's Chromium (about 350 MB, 114 packages).
  if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    say "chromium is installed already"
  elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's chromium with apt-get (about 350 MB, 114 packages; apt shows its progress)"
    apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }
    say "chromium installed"
  else
    echo "error: --browser needs root and apt-get (or install Chromium yourself)" >&2
    exit 1
  fi
fi
