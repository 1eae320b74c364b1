// NF4 quantize kernel throughput on a CUDA device, as a fraction of its memory bandwidth:
// EXAONE-4.0-32B's largest matrix (27392 x 5120, bf16, block 64), device-resident.
// Bytes moved per launch: the bf16 input, the packed codes and the absmax.
//   build/bin/bench_nf4_cuda [DEVICE=0] [REPS=50]
#include <cstdio>
#include <cstdlib>

#include "kernels/device_info.h"
#include "kernels/nf4_cuda.h"

int main(int argc, char** argv) {
  const int device = argc > 1 ? std::atoi(argv[1]) : 0, reps = argc > 2 ? std::atoi(argv[2]) : 50;
  std::string error;
  if (sp::cuda_devices(&error).empty()) {
    std::fprintf(stderr, "no CUDA device: %s\n", error.c_str());
    return 2;
  }
  const size_t n = 27392ull * 5120ull, bs = 64;
  const sp::CudaKernelTiming t = sp::nf4_quantize_cuda_timing(device, n, bs, reps);
  if (!t.error.empty()) {
    std::fprintf(stderr, "%s\n", t.error.c_str());
    return 1;
  }
  const double bytes = n * 2.0 + n / 2.0 + (n / bs) * 4.0;
  std::printf("%s: NF4 quantize 27392x5120 bf16, block 64: %.3f ms, %.1f GB/s moved, %.0f%% of %.0f GB/s peak "
              "(a device-to-device copy moves %.0f GB/s: %.0f%% of that)\n",
              t.device_name.c_str(), t.seconds * 1e3, bytes / t.seconds / 1e9, 100.0 * bytes / t.seconds / t.peak_bandwidth,
              t.peak_bandwidth / 1e9, t.copy_bandwidth / 1e9, 100.0 * bytes / t.seconds / t.copy_bandwidth);
  return 0;
}
