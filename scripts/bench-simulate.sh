#!/usr/bin/env bash
# Validates `shardpress simulate` (not a test): real `shardpress local --workers 2` runs of
# two jobs, alternated round by round, against what `simulate --local --workers 2*cpu`
# projects for them on this machine. Prints the median measured wall, the projection and
# their ratio (the target: within 25 %).
#   a 350M Llama (synthetic), RTN-NF4       — import, data path and assembly bound
#   stories260k, GPTQ-NF4, 128 x 256 tokens — calibration chain bound
# Usage: scripts/bench-simulate.sh [ROUNDS=3] [WORKDIR=build/bench-simulate]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
work="$(mkdir -p "${2:-build/bench-simulate}" && cd "${2:-build/bench-simulate}" && pwd)"
bin="$PWD/build/bin"
fixtures="$(cd "${SHARDPRESS_SHARED_DIR:-../shared}/fixtures/stories260k" && pwd)"
[ -d "$work/m350" ] || "$bin/shardpress" synth --arch llama --params 350M --dtype bf16 "$work/m350" > /dev/null
printf 'name: m350\nmodel: %s\noutput: %s\nquantize: {format: nf4}\n' "$work/m350" "$work/m350-out" > "$work/m350.yaml"
printf 'name: stories\nmodel: %s\noutput: %s\nquantize: {format: nf4, method: gptq}\ncalibrate: {ids: %s, samples: 128}\n' \
  "$fixtures/hf-bf16" "$work/stories-out" "$fixtures/text/calib.ids.txt" > "$work/stories.yaml"
source scripts/bench-common.sh
run() {  # JOB
  rm -rf "$work/$1-out" "$work/$1-state"
  timed "$bin/shardpress" local "$work/$1.yaml" --workers 2 --state-dir "$work/$1-state"
}
declare -A times
for r in $(seq "$rounds"); do
  for job in m350 stories; do times[$job]+="$(run $job) "; done
done
echo "shardpress local --workers 2 on this machine ($(nproc) cores), $rounds rounds alternated"
printf '%-8s %-28s %-10s %-10s %s\n' job measured median simulated ratio
for job in m350 stories; do
  m=$(echo ${times[$job]} | tr ' ' '\n' | median)
  s=$("$bin/shardpress" simulate "$work/$job.yaml" --local --workers 2*cpu -o json |
      python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["runs"][0]["wall_s"])')
  printf '%-8s %-28s %-10s %-10s %s\n' "$job" "${times[$job]}" "$m" "$s" "$(echo "scale=3; $s / $m" | bc)"
done
