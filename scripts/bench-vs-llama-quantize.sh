#!/usr/bin/env bash
# shardpress against llama.cpp's llama-quantize (not a test): the same synthetic Llama
# (bf16 for shardpress, f16 GGUF for llama-quantize: same shapes), alternated round by
# round, medians of ROUNDS, the ratios to llama-quantize:
#   compress         `shardpress compress` to NF4 (RTN), one process
#   local            `shardpress local --workers 2` to NF4 (RTN)
#   compress-gguf    `shardpress compress --format gguf --type Q4_0`: the same Q4_0 file
#                    llama-quantize writes, from the bf16 safetensors
#   local-gguf       `shardpress local --workers 2` of a job with format gguf, type Q4_0
#   llama-quantize   `llama-quantize in-f16.gguf out.gguf Q4_0 2` (2 threads)
#   local-q4km       the job with type Q4_K_M
#   llama-q4km       `llama-quantize in-f16.gguf out.gguf Q4_K_M 2`
# Usage: scripts/bench-vs-llama-quantize.sh [PARAMS=1.1B] [ROUNDS=3] [WORKDIR=build/bench-llama]
set -euo pipefail
cd "$(dirname "$0")/.."
params="${1:-1.1B}"
rounds="${2:-3}"
work="$(mkdir -p "${3:-build/bench-llama}" && cd "${3:-build/bench-llama}" && pwd)"
bin="$PWD/build/bin"
quantize="$(cd "${SHARDPRESS_SHARED_DIR:-../shared}/tools/llama.cpp/bin" && pwd)/llama-quantize"
[ -d "$work/bf16" ] || "$bin/shardpress" synth --params "$params" --dtype bf16 "$work/bf16" > /dev/null
# GGUF output needs a SentencePiece vocabulary: the fixture's (ids past its 512 become [PADn]).
[ -f "$work/bf16/tokenizer.model" ] ||
  cp "${SHARDPRESS_SHARED_DIR:-../shared}/fixtures/stories260k/hf-f32/tokenizer.model" "$work/bf16/"
if [ ! -f "$work/f16.gguf" ]; then
  "$bin/shardpress" synth --params "$params" --dtype f16 "$work/f16" > /dev/null
  python3 scripts/gguf-from-safetensors.py "$work/f16" "$work/f16.gguf" > /dev/null
  rm -rf "$work/f16"
fi
source scripts/bench-common.sh
run_compress() { rm -rf "$work/c-out"; "$bin/shardpress" compress "$work/bf16" "$work/c-out"; }
run_local() {
  rm -rf "$work/l-out" "$work/l-state"
  printf 'name: bench\nmodel: %s\noutput: %s\n' "$work/bf16" "$work/l-out" > "$work/l.yaml"
  "$bin/shardpress" local "$work/l.yaml" --workers 2 --state-dir "$work/l-state"
}
run_gguf() { rm -f "$work/g-q4_0.gguf"; "$bin/shardpress" compress "$work/bf16" "$work/g-q4_0.gguf" --format gguf --type Q4_0; }
run_llama() { rm -f "$work/q4_0.gguf"; "$quantize" "$work/f16.gguf" "$work/q4_0.gguf" Q4_0 2; }
run_local_gguf() {  # TYPE
  rm -rf "$work/lg.gguf" "$work/lg-state"
  printf 'name: bench\nmodel: %s\noutput: %s\nquantize: {format: gguf, type: %s}\n' "$work/bf16" "$work/lg.gguf" "$1" > "$work/lg.yaml"
  "$bin/shardpress" local "$work/lg.yaml" --workers 2 --state-dir "$work/lg-state"
}
run_local_q4_0() { run_local_gguf Q4_0; }
run_local_q4km() { run_local_gguf Q4_K_M; }
run_llama_q4km() { rm -f "$work/q4km.gguf"; "$quantize" "$work/f16.gguf" "$work/q4km.gguf" Q4_K_M 2; }
declare -A times
for r in $(seq "$rounds"); do
  times[compress]+="$(timed run_compress) "
  times[local]+="$(timed run_local) "
  times[compress-gguf]+="$(timed run_gguf) "
  times[local-gguf]+="$(timed run_local_q4_0) "
  times[llama-quantize]+="$(timed run_llama) "
  times[local-q4km]+="$(timed run_local_q4km) "
  times[llama-q4km]+="$(timed run_llama_q4km) "
done
base=$(echo ${times[llama-quantize]} | tr ' ' '\n' | median)
echo "synthetic Llama $params ($(grep -o '"num_hidden_layers": [0-9]*' "$work/bf16/config.json")), $rounds rounds alternated, median wall seconds"
base_k=$(echo ${times[llama-q4km]} | tr ' ' '\n' | median)
for k in compress local compress-gguf local-gguf llama-quantize local-q4km llama-q4km; do
  m=$(echo ${times[$k]} | tr ' ' '\n' | median)
  b=$base ref="llama-quantize Q4_0"
  case "$k" in *q4km) b=$base_k ref="llama-quantize Q4_K_M";; esac
  printf '%-15s %-30s median %-8s  %sx %s\n' "$k" "${times[$k]}" "$m" "$(echo "scale=2; $m / $b" | bc)" "$ref"
done
