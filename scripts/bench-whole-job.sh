#!/usr/bin/env bash
# Whole-job benchmark (not a test): the same RTN-NF4 job four ways on a synthetic Llama,
# alternated round by round (A B C D, A B C D, ...), medians of ROUNDS:
#   compress           the ops in one process (the floor)
#   local              `shardpress local --workers 2` (embedded coordinator + 2 workers)
#   daemons reference  coordinator + 2 worker processes, models read in place (default)
#   daemons copy       the same with `--import copy` (the model copied into RocksDB)
# Usage: scripts/bench-whole-job.sh [PARAMS=1B] [ROUNDS=3] [WORKDIR=build/bench-whole]
set -euo pipefail
cd "$(dirname "$0")/.."
params="${1:-1B}"
rounds="${2:-3}"
work="$(mkdir -p "${3:-build/bench-whole}" && cd "${3:-build/bench-whole}" && pwd)"
bin="$PWD/build/bin"
model="$work/model-$params"
[ -d "$model" ] || "$bin/shardpress" synth --arch llama --params "$params" --dtype bf16 "$model" > /dev/null
source scripts/bench-common.sh

run_compress() { rm -rf "$work/c-out"; "$bin/shardpress" compress "$model" "$work/c-out" > /dev/null 2>&1; }
run_local() {
  rm -rf "$work/l-out" "$work/l-state"
  printf 'name: bench\nmodel: %s\noutput: %s\n' "$model" "$work/l-out" > "$work/l.yaml"
  "$bin/shardpress" local "$work/l.yaml" --workers 2 --state-dir "$work/l-state" > /dev/null 2>&1
}
run_daemons() {  # MODE
  rm -rf "$work/d" && mkdir -p "$work/d/out"
  "$bin/shardpress-coordinator" --listen 127.0.0.1:0 --data-dir "$work/d/state" --model-root "$work" \
    --output-root "$work/d/out" --import "$1" 2> "$work/d/coord.log" &
  local c=$!
  for _ in $(seq 100); do [ -s "$work/d/state/coordinator.addr" ] && break; sleep 0.05; done
  local addr; addr="$(head -1 "$work/d/state/coordinator.addr")"
  "$bin/shardpress-worker" --coordinator "$addr" --cache-dir "$work/d/w1" 2> "$work/d/w1.log" &
  local w1=$!
  "$bin/shardpress-worker" --coordinator "$addr" --cache-dir "$work/d/w2" 2> "$work/d/w2.log" &
  local w2=$!
  printf 'name: bench\nmodel: %s\noutput: %s\n' "$model" "$work/d/out/nf4" > "$work/d/job.yaml"
  local t0; t0=$(now)
  "$bin/shardpress" --coordinator "$addr" submit "$work/d/job.yaml" --wait > /dev/null 2>&1
  local t1; t1=$(now)
  du -sb "$work/d/state" | cut -f1 > "$work/d-$1.bytes"  # (this runs in a subshell)
  kill -TERM $w1 $w2 $c; wait $w1 $w2 $c 2> /dev/null || true
  echo "$t1 - $t0" | bc
}

declare -A times
declare -A disk
for r in $(seq "$rounds"); do
  times[compress]+="$(timed run_compress) "
  times[local]+="$(timed run_local) "
  times[reference]+="$(run_daemons reference) "; disk[reference]=$(cat "$work/d-reference.bytes")
  times[copy]+="$(run_daemons copy) "; disk[copy]=$(cat "$work/d-copy.bytes")
done
base=$(echo ${times[compress]} | tr ' ' '\n' | median)
echo "model: $params ($(du -sb "$model" | cut -f1) bytes), $rounds rounds alternated, median wall seconds"
for k in compress local reference copy; do
  m=$(echo ${times[$k]} | tr ' ' '\n' | median)
  extra=""
  [ -n "${disk[$k]:-}" ] && extra=", data dir after the job ${disk[$k]} bytes"
  printf '%-10s %8.2f s  (%.2fx compress; runs: %s)%s\n' "$k" "$m" "$(echo "$m / $base" | bc -l)" "${times[$k]% }" "$extra"
done
