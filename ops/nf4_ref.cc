// Scalar reference 4-bit kernels, NF4 and FP4: the executable form of nf4-format.md §3-§5
// and bnb-fp4-int8-format.md A.2-A.4 (the same blocks and packing, another code book).
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

// One 4-bit type's reference: `code_of` decides each scaled value's code, `code` decodes.
template <uint8_t (*CodeOf)(float)>
size_t quantize_4bit_ref(const void* src, DType dtype, size_t n, size_t blocksize, uint8_t* packed, float* absmax) {
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
      const uint8_t hi = CodeOf(load(src, dtype, i) * inv);
      // The spare nibble of an odd count encodes a zero-padded element.
      const float x1 = i + 1 < end ? load(src, dtype, i + 1) : 0.0f;
      const uint8_t lo = CodeOf(x1 * inv);
      packed[i / 2] = static_cast<uint8_t>(hi << 4 | lo);
    }
  }
  return kAllFinite;
}

template <const float* Code, typename Out, Out (*Convert)(float)>
void dequantize_4bit_ref(const uint8_t* packed, const float* absmax, size_t n, size_t blocksize, Out* out) {
  for (size_t i = 0; i < n; ++i) {
    const uint8_t byte = packed[i / 2];
    const uint8_t q = (i % 2 == 0) ? byte >> 4 : byte & 0x0f;
    out[i] = Convert(Code[q] * absmax[i / blocksize]);
  }
}

float identity(float x) { return x; }
uint8_t nf4_code(float s) { return nf4_code_of(s); }

}  // namespace

size_t nf4_quantize_ref(const void* src, DType dtype, size_t n, size_t blocksize, uint8_t* packed,
                        float* absmax) {
  return quantize_4bit_ref<nf4_code>(src, dtype, n, blocksize, packed, absmax);
}

void nf4_dequantize_ref(const uint8_t* packed, const float* absmax, size_t n, size_t blocksize,
                        float* out) {
  dequantize_4bit_ref<kNf4Code, float, identity>(packed, absmax, n, blocksize, out);
}

void nf4_dequantize_bf16_ref(const uint8_t* packed, const float* absmax, size_t n,
                             size_t blocksize, uint16_t* out) {
  dequantize_4bit_ref<kNf4Code, uint16_t, f32_to_bf16>(packed, absmax, n, blocksize, out);
}

size_t fp4_quantize_ref(const void* src, DType dtype, size_t n, size_t blocksize, uint8_t* packed, float* absmax) {
  return quantize_4bit_ref<fp4_code_of>(src, dtype, n, blocksize, packed, absmax);
}

void fp4_dequantize_ref(const uint8_t* packed, const float* absmax, size_t n, size_t blocksize, float* out) {
  dequantize_4bit_ref<kFp4Code, float, identity>(packed, absmax, n, blocksize, out);
}

void fp4_dequantize_bf16_ref(const uint8_t* packed, const float* absmax, size_t n, size_t blocksize,
                             uint16_t* out) {
  dequantize_4bit_ref<kFp4Code, uint16_t, f32_to_bf16>(packed, absmax, n, blocksize, out);
}

void dynamic_codes_ref(const float* map, const float* x, size_t n, float offset, float scale, uint8_t* codes) {
  for (size_t i = 0; i < n; ++i) codes[i] = dynamic_code_of(map, (x[i] - offset) * scale);
}

}  // namespace sp
