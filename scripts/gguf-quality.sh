#!/usr/bin/env bash
# GGUF quality on stories260k (not a test): for every type and mix shardpress writes,
# perplexity measured by llama.cpp's own llama-perplexity on the fixture's eval text
# (story separators removed, -c 128, the first CHUNKS chunks), file size and bits per
# weight, without an importance matrix, with the one llama-imatrix computes on calib.txt,
# and with the one `shardpress imatrix` computes on calib.ids.txt (128 lines); and GPTQ on
# the type's grid (`--method gptq`, the same 128 lines, act-order off).
# stories260k's rows are 64 and 172 wide, so the K types fall back to 32-block types and
# ffn_down to F16 on every type (the fallbacks are the point: llama-quantize refuses most
# of these types on this model).
# Usage: scripts/gguf-quality.sh [CHUNKS=60] [WORKDIR=build/gguf-quality]
set -euo pipefail
cd "$(dirname "$0")/.."
chunks="${1:-60}"
source scripts/bench-common.sh
gguf_setup "${2:-build/gguf-quality}"
"$tools/llama-imatrix" -m "$work/F32.gguf" -f "$text/calib.txt" -c 128 --chunks 64 \
  -o "$work/imatrix.dat" > /dev/null 2>&1
"$sp" imatrix "$model" --ids "$text/calib.ids.txt" --samples 128 -o "$work/ours.dat" > /dev/null
ppl() { "$tools/llama-perplexity" -m "$1" -f "$work/eval.txt" -c 128 -b 128 --chunks "$chunks" 2>&1 |
          sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p'; }
printf '%-8s %10s %6s %10s %12s %12s %10s\n' type bytes bpw ppl +llama-imat +our-imat gptq
for t in F32 F16 BF16 Q8_0 Q6_K Q5_K_M Q5_K_S Q5_1 Q5_0 Q5_K Q4_K_M Q4_K_S Q4_1 IQ4_NL Q4_0 Q4_K; do
  [ -f "$work/$t.gguf" ] || "$sp" compress "$model" "$work/$t.gguf" --format gguf --type "$t" -o json > "$work/$t.json" 2>/dev/null
  with="-" ours="-" gptq="-"
  case "$t" in F32|F16|BF16|Q8_0) ;; *)
    "$sp" compress "$model" "$work/$t-im.gguf" --format gguf --type "$t" --imatrix "$work/imatrix.dat" > /dev/null 2>&1
    "$sp" compress "$model" "$work/$t-our.gguf" --format gguf --type "$t" --imatrix "$work/ours.dat" > /dev/null 2>&1
    "$sp" compress "$model" "$work/$t-gptq.gguf" --format gguf --type "$t" --method gptq \
      --calib-ids "$text/calib.ids.txt" --no-act-order > /dev/null 2>&1
    with=$(ppl "$work/$t-im.gguf") ours=$(ppl "$work/$t-our.gguf") gptq=$(ppl "$work/$t-gptq.gguf");;
  esac
  bpw=$(python3 -c "import json,sys; print('%.2f' % json.load(open('$work/$t.json'))['bits_per_weight'])" 2>/dev/null || echo 32.00)
  printf '%-8s %10s %6s %10s %12s %12s %10s\n' "$t" "$(stat -c %s "$work/$t.gguf")" "$bpw" "$(ppl "$work/$t.gguf")" "$with" "$ours" "$gptq"
done
