#!/usr/bin/env bash
# Sets everything up, builds, and runs a real compression job on the shipped tiny model
# (stories260k, a trained Llama) with `shardpress local`: an embedded coordinator and two
# workers on this machine, GPTQ on the NF4 grid calibrated on the fixture's text (the
# output is plain bitsandbytes NF4). Then verifies the checkpoint against the original
# and compares the perplexity of the original and of the compressed model.
# Output: build/example/stories260k-nf4/ (state in build/example/state; rerun resumes).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
fixtures="$(cd "${SHARDPRESS_SHARED_DIR:-../shared}/fixtures/stories260k" && pwd)"
model="$fixtures/hf-bf16"
mkdir -p build/example
rm -rf build/example/stories260k-nf4 build/example/state
cat > build/example/job.yaml <<YAML
name: stories260k-nf4
model: $model
output: build/example/stories260k-nf4
quantize: {format: nf4, method: gptq, blocksize: 64, double_quant: true, compute_dtype: bfloat16}
calibrate: {ids: $fixtures/text/calib.ids.txt, samples: 128}
YAML
./build/bin/shardpress local build/example/job.yaml --workers 2 --state-dir build/example/state
./build/bin/shardpress verify build/example/stories260k-nf4 --against "$model"
echo "== perplexity on the fixture's evaluation text: original, then compressed"
./build/bin/shardpress eval "$model" --ids "$fixtures/text/eval.ids.txt"
./build/bin/shardpress eval build/example/stories260k-nf4 --ids "$fixtures/text/eval.ids.txt"
