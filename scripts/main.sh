#!/usr/bin/env bash
# The main job, end to end: set up, train on the bundled data, evaluate, classify and route sample queries.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1
TR=.venv/bin/taskrouter
mkdir -p out
$TR train --data data/queries.jsonl --out out/model
DEV=../shared/data/dev/dev.jsonl
if [ -f "$DEV" ]; then
  $TR evaluate --data "$DEV" --model out/model --json out/eval-dev.json --llm off
  $TR evaluate --data "$DEV" --model out/model --json out/eval-dev-oracle.json --llm oracle
else
  echo "(no held-out set at $DEV: evaluating on the training data, which is optimistic)"
  $TR evaluate --data data/queries.jsonl --model out/model --json out/eval-train.json
fi
$TR classify --model out/model "what is the derivative of x^3 * sin(x)?" \
  "my flask app returns 500 when I post json, why" "write a limerick about a sleepy cat" \
  "what's a good itinerary for 3 days in Lisbon" "write a script for a short film about two strangers"
echo
echo "== routing with the DEMO config (mock replies, no API key) =="
$TR route --config routing/configs/demo.yaml "prove that the square root of 2 is irrational"
$TR complete --config routing/configs/demo.yaml "write a haiku about the first snow"
$TR complete --config routing/configs/demo.yaml "why does my python list comprehension raise NameError?"
