#!/usr/bin/env bash
# Sets everything up, builds, and compresses the shipped tiny model (stories260k, a real
# trained Llama) to a bitsandbytes NF4 checkpoint on this machine, then verifies it
# against the original. Output: build/example/stories260k-nf4/
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
model="${SHARDPRESS_SHARED_DIR:-../shared}/fixtures/stories260k/hf-bf16"
out=build/example/stories260k-nf4
rm -rf "$out"
mkdir -p build/example
./build/bin/shardpress inspect "$model"
./build/bin/shardpress compress "$model" "$out"
./build/bin/shardpress verify "$out" --against "$model"
