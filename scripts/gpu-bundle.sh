#!/usr/bin/env bash
# Packs what the GPU suite needs onto a machine that has a GPU and the CUDA runtime but
# none of our Debian libraries: the test/bench binaries, the coordinator/worker/CLI for
# the end-to-end GPU job, every shared library they load (ldd), and ../shared/fixtures.
# Usage: scripts/gpu-bundle.sh [BUILD_DIR] [OUT_DIR]   -> OUT_DIR/bundle.tar.gz
# There: scripts/gpu-suite.sh OUT_DIR/bundle.tar.gz
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
out="${2:-$root/device-carry}"
bins=(test_kernels bench_nf4_cuda bench_layer_cuda test_e2e shardpress shardpress-coordinator shardpress-worker fault_proxy)
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib" "$stage/shared" "$out"
for b in "${bins[@]}"; do
  [[ -x "$build/bin/$b" ]] && cp "$build/bin/$b" "$stage/bin/"
done
# Libraries the binaries load, except the C runtime every Linux has and the CUDA
# libraries the GPU machine's toolkit provides (cudart, cuBLAS, cuSOLVER: large).
ldd "$stage"/bin/* 2>/dev/null | awk '/=> \//{print $3}' | sort -u |
  grep -v -E '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so|/lib(cu(da|dart|blas|blasLt|solver|sparse)|nvJitLink)\.so' |
  while read -r lib; do cp -L "$lib" "$stage/lib/"; done
cp -r "$root/../shared/fixtures" "$stage/shared/"
echo "$(readlink -f "$build/bin")" > "$stage/bin_dir"
tar -C "$stage" -czf "$out/bundle.tar.gz" .
du -h "$out/bundle.tar.gz"
