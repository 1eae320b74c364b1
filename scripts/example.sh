#!/usr/bin/env bash
# Sets everything up, builds, and runs a real compression job on the shipped tiny model
# (stories260k, a trained Llama) with `shardpress local`: an embedded coordinator and two
# workers on this machine. Then verifies the NF4 checkpoint against the original.
# Output: build/example/stories260k-nf4/ (state in build/example/state; rerun resumes).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
model="$(cd "${SHARDPRESS_SHARED_DIR:-../shared}/fixtures/stories260k/hf-bf16" && pwd)"
mkdir -p build/example
rm -rf build/example/stories260k-nf4 build/example/state
cat > build/example/job.yaml <<YAML
name: stories260k-nf4
model: $model
output: build/example/stories260k-nf4
quantize: {format: nf4, blocksize: 64, double_quant: true, compute_dtype: bfloat16}
YAML
./build/bin/shardpress local build/example/job.yaml --workers 2 --state-dir build/example/state
./build/bin/shardpress verify build/example/stories260k-nf4 --against "$model"
