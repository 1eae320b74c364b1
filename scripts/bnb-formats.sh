#!/usr/bin/env bash
# bitsandbytes formats on stories260k (not a test): for NF4 and FP4, with and without double
# quantization, round to nearest, GPTQ (act-order, 128 calibration lines, the per-row scale
# search: the job's defaults) and GPTQ with importance-weighted block scales — perplexity
# on the fixture's eval set (162 x 256 tokens, `shardpress eval`) and the bytes of the
# written model.safetensors; then LLM.int8 (rtn, gptq). Prints a Markdown table.
# Usage: scripts/bnb-formats.sh [SAMPLES=128] [WORKDIR=build/bnb-formats]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
stories_quality_setup "${1:-128}" "${2:-build/bnb-formats}"
echo "| format | double quant | method | eval perplexity | model.safetensors bytes |"
echo "| --- | --- | --- | --- | --- |"
printf '| bf16 (original) | | | %.4f | %s |\n' "$(ppl "$model")" "$(stat -c %s "$model/model.safetensors")"
for format in nf4 fp4; do
  for dq in yes no; do
    for method in rtn gptq gptq-weighted; do
      out="$work/$format-$dq-$method"
      rm -rf "$out"
      args=(--format "$format" --method "${method%-weighted}")
      [ "$dq" = no ] && args+=(--no-double-quant)
      [ "$method" != rtn ] && args+=("${calib[@]}")
      [ "$method" = gptq-weighted ] && args+=(--scales weighted)
      "$bin/shardpress" compress "$model" "$out" "${args[@]}" > /dev/null 2>&1
      printf '| %s | %s | %s | %.4f | %s |\n' "$format" "$dq" "$method" "$(ppl "$out")" "$(stat -c %s "$out/model.safetensors")"
    done
  done
done
for method in rtn gptq; do  # LLM.int8: no blocks, no double quantization
  out="$work/int8-$method"
  rm -rf "$out"
  args=(--format int8 --method "$method")
  [ "$method" = gptq ] && args+=("${calib[@]}")
  "$bin/shardpress" compress "$model" "$out" "${args[@]}" > /dev/null 2>&1
  printf '| int8 | | %s | %.4f | %s |\n' "$method" "$(ppl "$out")" "$(stat -c %s "$out/model.safetensors")"
done
