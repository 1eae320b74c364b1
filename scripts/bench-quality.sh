#!/usr/bin/env bash
# Quality benchmark (not a test): perplexity of stories260k (hf-bf16) on the fixture's
# eval set (162 x 256 tokens) after each compression, calibrated on the first SAMPLES
# lines of calib.ids.txt. Prints a Markdown table. Needs the build (scripts/build.sh).
# Usage: scripts/bench-quality.sh [SAMPLES=128] [WORKDIR=build/bench-quality]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
stories_quality_setup "${1:-128}" "${2:-build/bench-quality}"
row() {  # NAME ARGS...: compress with ARGS, print the row
  local name="$1"; shift
  local out="$work/$(echo "$name" | tr -c 'a-zA-Z0-9' '_')"
  rm -rf "$out"
  local t0=$(date +%s.%N)
  "$bin/shardpress" compress "$model" "$out" "$@" > /dev/null 2>&1
  local secs=$(echo "$(date +%s.%N) - $t0" | bc)
  printf '| %s | %.4f | %.1f |\n' "$name" "$(ppl "$out")" "$secs"
}

echo "| compression of stories260k (bf16) | eval perplexity | seconds |"
echo "| --- | --- | --- |"
printf '| none (bf16) | %.4f | |\n' "$(ppl "$model")"
row "RTN-NF4 (bitsandbytes), double quant" --method rtn
row "RTN-NF4, float32 absmax" --method rtn --no-double-quant
row "GPTQ-NF4, no act-order, no scale search" --method gptq --no-act-order --scale-search 0 "${calib[@]}"
row "GPTQ-NF4, no act-order" --method gptq --no-act-order "${calib[@]}"
row "GPTQ-NF4, act-order, no scale search" --method gptq --act-order --scale-search 0 "${calib[@]}"
row "GPTQ-NF4, act-order (job default)" --method gptq --act-order "${calib[@]}"
row "GPTQ-NF4, act-order, true-sequential" --method gptq --act-order --true-sequential "${calib[@]}"
row "GPTQ-NF4, act-order, pipelined" --method gptq --act-order --calib-mode pipelined "${calib[@]}"
for p in magnitude wanda sparsegpt; do
  row "$p 30% (no NF4)" --prune "$p" --sparsity 0.3 --no-quantize "${calib[@]}"
  row "$p 30% + RTN-NF4" --prune "$p" --sparsity 0.3 "${calib[@]}"
  row "$p 30% + GPTQ-NF4" --prune "$p" --sparsity 0.3 --method gptq --act-order "${calib[@]}"
done
row "sparsegpt 2:4 + GPTQ-NF4" --prune sparsegpt --scope 2:4 --method gptq "${calib[@]}"
row "magnitude 2:4 + RTN-NF4" --prune magnitude --scope 2:4
row "wanda 2:4 + RTN-NF4" --prune wanda --scope 2:4 "${calib[@]}"
