#!/usr/bin/env bash
# Runs the GPU suite from a bundle made by scripts/gpu-bundle.sh, on a machine with a GPU:
# the kernel tests, the CUDA end-to-end job, and the GPU benchmarks. Logs go to $OUT (or
# ./gpu-out). Usage: scripts/gpu-suite.sh BUNDLE [tests|bench|all]
set -uo pipefail
bundle="$1"; what="${2:-all}"
out="${OUT:-$PWD/gpu-out}"; mkdir -p "$out"
dir=/tmp/sp-gpu; rm -rf "$dir"; mkdir -p "$dir"; tar -C "$dir" -xzf "$bundle"
# The e2e test starts the binaries from the build folder it was compiled in.
bindir="$(cat "$dir/bin_dir")"; mkdir -p "$bindir"; cp "$dir"/bin/* "$bindir/"
cuda_lib="$(dirname "$(find / -name 'libcublas.so.*' -not -path '/proc/*' 2>/dev/null | head -1)")"
export LD_LIBRARY_PATH="$dir/lib:$cuda_lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export SHARDPRESS_SHARED_DIR="$dir/shared"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem --format=csv | tee "$out/gpu.txt"
rc=0
if [[ "$what" != bench ]]; then
  "$bindir/test_kernels" 2>&1 | tee "$out/test_kernels.log" || rc=1
  "$bindir/test_e2e" --gtest_filter='*Cuda*' 2>&1 | tee "$out/test_e2e_cuda.log" || rc=1
  "$bindir/test_kernels" --gtest_filter='*Cuda*' --gtest_repeat=2 >/dev/null 2>&1 || { echo "kernel tests flaky on repeat"; rc=1; }
fi
if [[ "$what" != tests ]]; then
  "$bindir/bench_nf4_cuda" 0 20 2>&1 | tee "$out/bench_nf4_cuda.log" || rc=1
  # LAYER_BENCH_ARGS: SEQUENCES TOKENS SCALE_SEARCH BUDGET_GIB (default 128 2048 0.1 11)
  [[ -x "$bindir/bench_layer_cuda" ]] && { "$bindir/bench_layer_cuda" ${LAYER_BENCH_ARGS:-} 2>&1 | tee "$out/bench_layer_cuda.log" || rc=1; }
fi
exit $rc
