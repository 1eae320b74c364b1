#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build-fuzz/ and runs each for SECONDS
# (default 30) from its seed corpus in tests/fuzz/corpus/. A crash, hang or sanitizer
# report fails the script and leaves the input as build-fuzz/crash-*: turn it into a
# regression test. Prints inputs tried and executions per second for each target.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
shift || true
if ! command -v clang++ >/dev/null 2>&1; then
  echo "fuzz: clang++ not found, fuzzers skipped"
  exit 0
fi
all=(safetensors_header safetensors_index model_config model_plan job_yaml config_file blob_stream quant_state token_ids gguf)
targets=("${@:-${all[@]}}")
if [ ! -f build-fuzz/CMakeCache.txt ]; then
  generator=()
  command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
  cmake -S . -B build-fuzz "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
    -DCMAKE_CXX_COMPILER=clang++ -DSHARDPRESS_FUZZ=ON -DSHARDPRESS_CUDA=OFF -DBUILD_TESTING=OFF > /dev/null
fi
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]/#/fuzz_}" > build-fuzz/build.log 2>&1 ||
  { tail -30 build-fuzz/build.log; exit 1; }
for t in "${targets[@]}"; do
  work="build-fuzz/corpus/$t"
  mkdir -p "$work"
  log="build-fuzz/$t.log"
  max_len=8192
  [ "$t" = model_plan ] && max_len=16384  # a config.json and a whole safetensors header
  [ "$t" = gguf ] && max_len=16384        # a GGUF header with a small vocabulary
  if ! (cd build-fuzz && "./bin/fuzz_$t" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 "corpus/$t" "../tests/fuzz/corpus/$t" > "$t.log" 2>&1); then
    tail -40 "$log"
    echo "fuzz: $t FAILED (input saved in build-fuzz/)"
    exit 1
  fi
  runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  corpus=$(ls "$work" | wc -l)
  echo "fuzz: $t ok: $runs inputs in ${seconds} s ($((runs / seconds)) exec/s), corpus $corpus"
done
