#!/usr/bin/env bash
# GGUF quality against llama.cpp (not a test): stories260k, the eval text without its
# `<|endoftext|>` lines, llama-perplexity -c 256: perplexity and KL divergence to our F32
# export (--kl-divergence-base / --kl-divergence), for
#   Q4_K_M, Q5_K_S: llama-quantize without and with an imatrix (llama-imatrix -f calib.txt
#                   -c 256), shardpress RTN, RTN + its own imatrix (calib.ids.txt, 128
#                   lines), GPTQ (the same lines) — the same tensor types in every file;
#   Q4_0, IQ4_NL:   shardpress only (llama-quantize refuses stories260k's 172-wide ffn_down
#                   in these types; ours falls back to F16 there).
# Usage: scripts/gguf-kld.sh [WORKDIR=build/gguf-kld]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
gguf_setup "${1:-build/gguf-kld}"
"$tools/llama-perplexity" -m "$work/F32.gguf" -f "$work/eval.txt" -c 256 -b 256 --kl-divergence-base "$work/base.kld" \
  > "$work/base.log" 2>&1
"$tools/llama-imatrix" -m "$work/F32.gguf" -f "$text/calib.txt" -c 256 -o "$work/lq.imatrix" > /dev/null 2>&1
"$sp" imatrix "$model" --ids "$text/calib.ids.txt" --samples 128 -o "$work/ours.imatrix" > /dev/null
score() {  # FILE -> "ppl kld"
  "$tools/llama-perplexity" -m "$1" -c 256 -b 256 --kl-divergence-base "$work/base.kld" --kl-divergence > "$1.log" 2>&1
  printf '%s %s' "$(sed -n 's/^Mean PPL(Q) *: *\([0-9.]*\).*/\1/p' "$1.log")" \
                 "$(sed -n 's/^Mean *KLD: *\([0-9.]*\).*/\1/p' "$1.log")"
}
types() { "$sp" verify "$1" -o json | python3 -c "import json,sys,collections; print(dict(sorted(collections.Counter(t['type'] for t in json.load(sys.stdin)['tensors']).items())))"; }
echo "F32 export: $(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/PPL \1/p' "$work/base.log")"
printf '%-8s %-26s %10s %10s  %s\n' type variant ppl kld tensor-types
for t in Q4_K_M Q5_K_S Q4_0 IQ4_NL; do
  variants=()
  if [ "$t" = Q4_K_M ] || [ "$t" = Q5_K_S ]; then
    "$tools/llama-quantize" "$work/F32.gguf" "$work/$t-lq.gguf" "$t" > /dev/null 2>&1
    "$tools/llama-quantize" --imatrix "$work/lq.imatrix" "$work/F32.gguf" "$work/$t-lq-im.gguf" "$t" > /dev/null 2>&1
    variants+=("llama-quantize:$t-lq" "llama-quantize+imatrix:$t-lq-im")
  fi
  "$sp" compress "$model" "$work/$t-rtn.gguf" --format gguf --type "$t" > /dev/null 2>&1
  "$sp" compress "$model" "$work/$t-im.gguf" --format gguf --type "$t" --imatrix "$work/ours.imatrix" > /dev/null 2>&1
  "$sp" compress "$model" "$work/$t-gptq.gguf" --format gguf --type "$t" --method gptq \
    --calib-ids "$text/calib.ids.txt" --calib-samples 128 > /dev/null 2>&1
  variants+=("shardpress-rtn:$t-rtn" "shardpress-rtn+imatrix:$t-im" "shardpress-gptq:$t-gptq")
  for v in "${variants[@]}"; do
    read -r ppl kld <<< "$(score "$work/${v#*:}.gguf")"
    printf '%-8s %-26s %10s %10s  %s\n' "$t" "${v%%:*}" "$ppl" "$kld" "$(types "$work/${v#*:}.gguf")"
  done
done
