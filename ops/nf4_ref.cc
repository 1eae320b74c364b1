// Scalar reference NF4 kernels: the executable form of nf4-format.md §3-§5.
#include <cmath>
#include <cstring>

#include "common/half.h"
#include "ops/double_quant.h"
#include "ops/nf4.h"

namespace sp {
namespace {

inline float load(const void* src, DType dtype, size_t i) {
  switch (dtype) {
    case DType::kBF16: return bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
    case DType::kF16: return f16_to_f32(static_cast<const uint16_t*>(src)[i]);
    default: return static_cast<const float*>(src)[i];
  }
}

}  // namespace

size_t nf4_quantize_ref(const void* src, DType dtype, size_t n, size_t blocksize, uint8_t* packed,
                        float* absmax) {
  const size_t nb = nf4_num_blocks(n, blocksize);
  for (size_t b = 0; b < nb; ++b) {
    const size_t begin = b * blocksize;
    const size_t end = begin + blocksize < n ? begin + blocksize : n;
    float amax = 0.0f;
    for (size_t i = begin; i < end; ++i) {
      const float x = load(src, dtype, i);
      if (!std::isfinite(x)) return i;
      amax = std::fmax(amax, std::fabs(x));
    }
    absmax[b] = amax;
    // Multiply by the IEEE reciprocal, as the CUDA kernel does (without fast-math).
    // amax == 0 gives inv = inf and s = 0 * inf = NaN: code 0 for the whole block.
    const float inv = 1.0f / amax;
    for (size_t i = begin; i < end; i += 2) {
      const uint8_t hi = nf4_code_of(load(src, dtype, i) * inv);
      // The spare nibble of an odd count encodes a zero-padded element.
      const float x1 = i + 1 < end ? load(src, dtype, i + 1) : 0.0f;
      const uint8_t lo = nf4_code_of(x1 * inv);
      packed[i / 2] = static_cast<uint8_t>(hi << 4 | lo);
    }
  }
  return kAllFinite;
}

void nf4_dequantize_ref(const uint8_t* packed, const float* absmax, size_t n, size_t blocksize,
                        float* out) {
  for (size_t i = 0; i < n; ++i) {
    const uint8_t byte = packed[i / 2];
    const uint8_t q = (i % 2 == 0) ? byte >> 4 : byte & 0x0f;
    out[i] = kNf4Code[q] * absmax[i / blocksize];
  }
}

void nf4_dequantize_bf16_ref(const uint8_t* packed, const float* absmax, size_t n,
                             size_t blocksize, uint16_t* out) {
  for (size_t i = 0; i < n; ++i) {
    const uint8_t byte = packed[i / 2];
    const uint8_t q = (i % 2 == 0) ? byte >> 4 : byte & 0x0f;
    out[i] = f32_to_bf16(kNf4Code[q] * absmax[i / blocksize]);
  }
}

void dynamic_codes_ref(const float* map, const float* x, size_t n, float offset, float scale, uint8_t* codes) {
  for (size_t i = 0; i < n; ++i) codes[i] = dynamic_code_of(map, (x[i] - offset) * scale);
}

}  // namespace sp
