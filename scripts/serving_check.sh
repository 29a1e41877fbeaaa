#!/usr/bin/env bash
# The serving install in an empty venv: `pip install '.[proxy]'` (no torch, sentence-transformers or
# scikit-learn), then scripts/serving_check.py classifies, routes and completes with the demo config and runs the
# proxy hook. Prints the installed size and the import-to-first-decision time.
#
#   bash scripts/serving_check.sh            # a throwaway venv under $TMPDIR
#   SERVING_VENV=path bash scripts/serving_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
VENV=${SERVING_VENV:-$WORK/venv}
START=$SECONDS
say() { echo "[serving-check +$((SECONDS - START))s] $*"; }

say "creating an empty venv at $VENV"
"$PY" -m venv "$VENV"
# From a copy of the files git tracks or would (no build/ left over from an earlier wheel, no .venv).
mkdir "$WORK/src"
git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$WORK/src"
say "pip install '.[proxy]' (a wheel of taskrouter with its shipped model and serving files; about 1-2 min)"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q "$WORK/src[proxy]" 2>&1 \
  | sed -e "/^WARNING: Location '.*' is ignored: it is neither a/d"
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
say "installed: $(du -sh "$SITE" | cut -f1) in site-packages; taskrouter itself: $(du -shc "$SITE/classifier" "$SITE/routing" | tail -1 | cut -f1)"
# Run outside the checkout, so that only the installed package can be imported.
cd "$WORK"
env -u PYTHONPATH LITELLM_LOCAL_MODEL_COST_MAP=True TASKROUTER_CACHE="$WORK/cache" \
  "$VENV/bin/python" "$ROOT/scripts/serving_check.py"
say "done"
