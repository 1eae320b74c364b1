#include "ops/nf4.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "common/float_convert.h"
#include "fmt/format.h"
#if defined(SP_HAVE_AVX2_KERNELS)
#include "ops/nf4_avx2.h"
#endif

namespace sp {
namespace {

bool always() { return true; }

#if defined(SP_HAVE_AVX2_KERNELS)
// Every AVX2 CPU (Intel Haswell+, AMD Excavator+) also has F16C, which the kernels use.
bool has_avx2() { return __builtin_cpu_supports("avx2"); }
#endif

// One row per backend: name, availability, kernels. Tests iterate over this table.
const Nf4Backend kBackends[] = {
    {"reference", always, nf4_quantize_ref, nf4_dequantize_ref, nf4_dequantize_bf16_ref, dynamic_codes_ref},
#if defined(SP_HAVE_AVX2_KERNELS)
    {"avx2", has_avx2, avx2::nf4_quantize, avx2::nf4_dequantize, avx2::nf4_dequantize_bf16, avx2::dynamic_codes},
#endif
};

}  // namespace

std::span<const Nf4Backend> nf4_backends() { return kBackends; }

const Nf4Backend& nf4_reference_backend() { return kBackends[0]; }

const Nf4Backend& fp4_reference_backend() {
  static const Nf4Backend fp4{"fp4-reference", always, fp4_quantize_ref, fp4_dequantize_ref, fp4_dequantize_bf16_ref,
                              dynamic_codes_ref};
  return fp4;
}

const Nf4Backend& nf4_best_backend() {
  static const Nf4Backend* best = [] {
    const char* forced = std::getenv("SHARDPRESS_NF4_BACKEND");
    const Nf4Backend* pick = &kBackends[0];
    for (const auto& b : kBackends) {
      if (!b.available()) continue;
      if (forced && *forced) {
        if (std::strcmp(forced, b.name) == 0) pick = &b;
      } else {
        pick = &b;  // later rows are faster
      }
    }
    return pick;
  }();
  return *best;
}

absl::StatusOr<Nf4Tensor> nf4_quantize(std::span<const uint8_t> bytes, DType dtype, int64_t rows,
                                       int64_t cols, int blocksize, const Nf4Backend& backend) {
  if (!is_quantizable_float(dtype))
    return absl::InvalidArgumentError(
        fmt::format("dtype {} cannot be quantized (need F32, F16 or BF16)", dtype_name(dtype)));
  if (!nf4_blocksize_ok(blocksize))
    return absl::InvalidArgumentError(fmt::format(
        "block size {} is not one bitsandbytes accepts (32, 64, 128, ..., 4096)", blocksize));
  if (rows < 0 || cols < 0)
    return absl::InvalidArgumentError("negative dimension");
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  if (bytes.size() != n * dtype_size(dtype))
    return absl::InvalidArgumentError(fmt::format("{} bytes given for {}x{} {}", bytes.size(), rows,
                                                  cols, dtype_name(dtype)));
  Nf4Tensor out;
  out.packed.resize(nf4_packed_bytes(n));
  out.absmax.resize(nf4_num_blocks(n, static_cast<size_t>(blocksize)));
  const size_t bad = backend.quantize(bytes.data(), dtype, n, static_cast<size_t>(blocksize),
                                      out.packed.data(), out.absmax.data());
  if (bad != kAllFinite) {
    const size_t c = cols > 0 ? static_cast<size_t>(cols) : 1;
    return absl::InvalidArgumentError(
        fmt::format("element {} (row {}, column {}) is {}; 4-bit types cannot encode NaN or infinity", bad,
                    bad / c, bad % c, element_as_float32(bytes, dtype, bad)));
  }
  return out;
}

}  // namespace sp
