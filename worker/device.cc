#include "worker/device.h"

#include <atomic>
#include <cstdio>

#include "common/byte_size.h"
#include "fmt/format.h"

#ifdef SHARDPRESS_HAVE_CUDA
#include "kernels/device_info.h"
#include "kernels/nf4_cuda.h"
#include "kernels/prune_cuda.h"
#endif

namespace sp {

#ifdef SHARDPRESS_HAVE_CUDA
namespace {

std::atomic<int> g_cuda_device{0};

size_t cuda_quantize(const void* src, DType dtype, size_t n, size_t blocksize, uint8_t* packed, float* absmax) {
  const CudaInput t = dtype == DType::kF32 ? CudaInput::kF32 : dtype == DType::kF16 ? CudaInput::kF16 : CudaInput::kBF16;
  CudaNf4Result r = nf4_quantize_cuda(g_cuda_device.load(), src, t, n, blocksize);
  if (!r.error.empty()) {  // out of memory, a lost device...: this task runs on the CPU
    std::fprintf(stderr, "cuda:%d NF4 quantize failed (%s); quantizing on the CPU\n", g_cuda_device.load(),
                 r.error.c_str());
    return nf4_best_backend().quantize(src, dtype, n, blocksize, packed, absmax);
  }
  if (r.first_nonfinite != SIZE_MAX) return r.first_nonfinite;
  std::copy(r.packed.begin(), r.packed.end(), packed);
  std::copy(r.absmax.begin(), r.absmax.end(), absmax);
  return kAllFinite;
}

bool cuda_available() { return !cuda_devices().empty(); }

}  // namespace
#endif

absl::StatusOr<DeviceChoice> choose_device(const std::string& flag) {
  if (flag == "cpu") return DeviceChoice{};
  if (flag != "auto" && flag.rfind("cuda:", 0) != 0)
    return absl::InvalidArgumentError(fmt::format("--device {}: expected auto, cpu or cuda:N", flag));
#ifdef SHARDPRESS_HAVE_CUDA
  std::string error;
  const auto devices = cuda_devices(&error);
  int index = 0;
  if (flag == "auto") {
    if (devices.empty()) return DeviceChoice{};
  } else {
    const std::string num = flag.substr(5);
    if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos)
      return absl::InvalidArgumentError(fmt::format("--device {}: expected cuda:N with N a device index", flag));
    index = std::stoi(num);
  }
  for (const auto& d : devices)
    if (d.index == index)
      return DeviceChoice{fmt::format("cuda:{} ({}, sm_{}{}, {})", d.index, d.name, d.cc_major, d.cc_minor,
                                      format_bytes(d.total_memory)),
                          d.index};
  std::string list;
  for (const auto& d : devices) list += fmt::format("{}cuda:{} ({})", list.empty() ? "" : ", ", d.index, d.name);
  return absl::InvalidArgumentError(fmt::format("--device {}: no such CUDA device ({})", flag,
                                                list.empty() ? "none found: " + error : "present: " + list));
#else
  if (flag == "auto") return DeviceChoice{};
  return absl::InvalidArgumentError(
      fmt::format("--device {}: this build has no CUDA (nvcc was not found when it was built); use cpu or auto", flag));
#endif
}

const Nf4Backend& nf4_backend_for(const DeviceChoice& device) {
#ifdef SHARDPRESS_HAVE_CUDA
  if (device.cuda >= 0) {
    g_cuda_device = device.cuda;
    static const Nf4Backend cuda{"cuda", &cuda_available, &cuda_quantize, nf4_best_backend().dequantize,
                                 nf4_best_backend().dequantize_bf16};
    return cuda;
  }
#endif
  (void)device;
  return nf4_best_backend();
}

const PruneDevice* prune_device_for(const DeviceChoice& device) {
#ifdef SHARDPRESS_HAVE_CUDA
  if (device.cuda >= 0) {
    g_cuda_device = device.cuda;
    static const PruneDevice cuda = [](std::span<float> w, int64_t rows, int64_t cols, PruneScope scope, uint64_t k) {
      const CudaPruneScope s = scope == PruneScope::kRow      ? CudaPruneScope::kRow
                               : scope == PruneScope::kTensor ? CudaPruneScope::kTensor
                                                              : CudaPruneScope::kTwoFour;
      const std::string error = prune_magnitude_cuda(g_cuda_device.load(), w.data(), rows, cols, s, k);
      if (error.empty()) return true;
      std::fprintf(stderr, "cuda:%d pruning failed (%s); pruning on the CPU\n", g_cuda_device.load(), error.c_str());
      return false;
    };
    return &cuda;
  }
#endif
  (void)device;
  return nullptr;
}

}  // namespace sp
