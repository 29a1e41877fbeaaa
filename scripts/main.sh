#!/usr/bin/env bash
# The main job, end to end: set up, train on the bundled data, evaluate, then classify and route sample queries
# with the model just trained.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1
VENV=${VENV:-.venv}
TR=$VENV/bin/taskrouter
START=$SECONDS
say() { echo; echo "== [main +$((SECONDS - START))s] $*"; }
mkdir -p out

if [ "${TUNE:-0}" = 1 ]; then
  say "TUNE=1: tuning MiniLM on data/queries.jsonl and installing it as the 'tuned' encoder (about 5 min on 2 cores)"
  $TR tune-encoder --data data/queries.jsonl --out out/encoder
fi
say "training on data/queries.jsonl -> out/model with the shipped tuned encoder (about 1 min on 2 cores; TUNE=1 tunes it again first)"
$TR train --data data/queries.jsonl --out out/model --encoder tuned
DEV=../shared/data/dev/dev.jsonl
if [ -f "$DEV" ]; then
  say "evaluating out/model on the held-out set $DEV (stage 3 off, then the oracle upper bound)"
  $TR evaluate --data "$DEV" --model out/model --json out/eval-dev.json --llm off
  $TR evaluate --data "$DEV" --model out/model --json out/eval-dev-oracle.json --llm oracle
else
  say "no held-out set at $DEV: evaluating on the training data, which is optimistic"
  $TR evaluate --data data/queries.jsonl --model out/model --json out/eval-train.json
fi

say "classifying sample queries with out/model"
$TR classify --model out/model "what is the derivative of x^3 * sin(x)?" \
  "my flask app returns 500 when I post json, why" "write a limerick about a sleepy cat" \
  "what's a good itinerary for 3 days in Lisbon" "write a script for a short film about two strangers"

# The demo config with its classifier pointed at the model trained above (a relative path is read from the
# config's folder, so out/demo.yaml says `model: model`).
"$VENV/bin/python" - <<'PY'
import yaml

config = yaml.safe_load(open("routing/configs/demo.yaml", encoding="utf-8"))
config["taskrouter"]["classifier"] = {"model": "model"}
with open("out/demo.yaml", "w", encoding="utf-8") as f:
    f.write("# The demo config (routing/configs/demo.yaml) routing with the model in out/model. Mock replies.\n")
    yaml.safe_dump(config, f, sort_keys=False, width=120)
PY
say "routing with out/demo.yaml: the DEMO config (mock replies, no API key) and the model in out/model"
$TR route --config out/demo.yaml "prove that the square root of 2 is irrational"
$TR complete --config out/demo.yaml "write a haiku about the first snow"
$TR complete --config out/demo.yaml "why does my python list comprehension raise NameError?"
say "done"
