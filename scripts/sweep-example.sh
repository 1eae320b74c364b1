#!/usr/bin/env bash
# The README's sweep example, as written: the seed project's plan on stories260k
# (magnitude vs SparseGPT at 20/30/40 %, NF4 round-to-nearest vs GPTQ, and quantization
# alone in three sizes), every variant evaluated on the fixture's evaluation text
# (perplexity, and accuracy on the stories multiple-choice task). A
# coordinator and two workers run on 127.0.0.1 in build/sweep-example/ (a fresh state
# each time); the report's table is printed and its plot written to
# build/sweep-example/seed-plan.svg. Needs a build (scripts/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
fixtures="$(cd "${SHARDPRESS_SHARED_DIR:-../shared}/fixtures/stories260k" && pwd)"
bin="$PWD/build/bin"
dir=build/sweep-example
rm -rf "$dir" && mkdir -p "$dir/models" "$dir/out"
cp -r "$fixtures/hf-bf16" "$dir/models/stories"
cp "$fixtures/text/calib.ids.txt" "$fixtures/text/eval.ids.txt" "$dir/models/"
scripts/make-stories-choices.py "$fixtures/text/eval.txt" > "$dir/models/stories-choices.jsonl"
cp deploy/examples/seed-plan-sweep.yaml "$dir/sweep.yaml"
cd "$dir"
"$bin/shardpress-coordinator" --listen 127.0.0.1:0 --data-dir state --model-root models --output-root out \
  2> coordinator.log &
pids=($!)
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
for i in $(seq 100); do [ -s state/coordinator.addr ] && break; sleep 0.1; done
export SHARDPRESS_COORDINATOR="$(head -1 state/coordinator.addr)"
for w in a b; do
  "$bin/shardpress-worker" --cache-dir "cache-$w" --memory 2GiB 2> "worker-$w.log" &
  pids+=($!)
done
"$bin/shardpress" sweep sweep.yaml --wait
"$bin/shardpress" report sweep.yaml --plot seed-plan.svg
