// NF4 4-bit quantization, byte-exact with bitsandbytes (shared/docs/nf4-format.md).
//
// Layout: the weight is flattened row-major; consecutive runs of `blocksize` elements
// form blocks (the last may be partial; blocks may straddle rows); each block stores its
// float32 absmax; element 2i is the high nibble of byte i, 2i+1 the low nibble; an odd
// count pads the last low nibble with the code of 0.0 (7, or 0 if that block is all zero).
//
// Each backend (scalar reference, AVX2) has the same signature and produces identical
// bytes; nf4_backends() lists them for dispatch and tests.
//
// Thread-safety: all functions are pure; call concurrently on disjoint outputs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/status.h"
#include "formats/bnb_format.h"
#include "ops/nf4_codebook.h"

namespace sp {

// Sentinel returned by a quantize kernel when every input was finite.
inline constexpr size_t kAllFinite = static_cast<size_t>(-1);

struct Nf4Backend {
  const char* name;
  // True if this CPU can run it.
  bool (*available)();
  // Quantizes n elements of `src` (dtype F32/F16/BF16) into packed[(n+1)/2] and
  // absmax[ceil(n/blocksize)]. Returns kAllFinite, or the index of the first NaN/Inf
  // element (outputs are then unspecified). blocksize must satisfy nf4_blocksize_ok.
  size_t (*quantize)(const void* src, DType dtype, size_t n, size_t blocksize, uint8_t* packed,
                     float* absmax);
  // out[i] = code[q_i] * absmax[i / blocksize], float32.
  void (*dequantize)(const uint8_t* packed, const float* absmax, size_t n, size_t blocksize,
                     float* out);
  // Same value rounded to bf16 (round to nearest even), as bitsandbytes returns it for a
  // bf16 weight.
  void (*dequantize_bf16)(const uint8_t* packed, const float* absmax, size_t n, size_t blocksize,
                          uint16_t* out);
  // Double quantization's 8-bit codes: codes[i] = dynamic_code_of(map, (x[i] - offset) *
  // scale) (ops/double_quant.h: bitsandbytes' search in its signed dynamic map).
  void (*dynamic_codes)(const float* map, const float* x, size_t n, float offset, float scale, uint8_t* codes);
};

// Reference first; then the vector backends compiled into this build.
std::span<const Nf4Backend> nf4_backends();
// The fastest backend this CPU runs (SHARDPRESS_NF4_BACKEND=reference forces the reference).
const Nf4Backend& nf4_best_backend();
const Nf4Backend& nf4_reference_backend();

inline size_t nf4_num_blocks(size_t n, size_t blocksize) { return (n + blocksize - 1) / blocksize; }
inline size_t nf4_packed_bytes(size_t n) { return (n + 1) / 2; }

// The result of quantizing one tensor (before double quantization).
struct Nf4Tensor {
  std::vector<uint8_t> packed;
  std::vector<float> absmax;
};

// Quantizes a [rows, cols] tensor of `dtype` in `bytes`. A NaN/Inf is an INVALID_ARGUMENT
// error that names the element ("element 12345 (row 3, column 57) is nan"); the caller
// prefixes the tensor name.
absl::StatusOr<Nf4Tensor> nf4_quantize(std::span<const uint8_t> bytes, DType dtype, int64_t rows,
                                       int64_t cols, int blocksize,
                                       const Nf4Backend& backend = nf4_best_backend());

// Reference kernels (scalar; they are the spec).
size_t nf4_quantize_ref(const void* src, DType dtype, size_t n, size_t blocksize, uint8_t* packed,
                        float* absmax);
void nf4_dequantize_ref(const uint8_t* packed, const float* absmax, size_t n, size_t blocksize,
                        float* out);
void nf4_dequantize_bf16_ref(const uint8_t* packed, const float* absmax, size_t n,
                             size_t blocksize, uint16_t* out);
void dynamic_codes_ref(const float* map, const float* x, size_t n, float offset, float scale, uint8_t* codes);

// One element of the reference: the code of a scaled value s = x * (1/absmax).
inline uint8_t nf4_code_of(float s) {
  uint8_t q = 0;
  for (float t : kNf4Threshold) q += s > t ? 1 : 0;
  return q;
}

// FP4: the same blocks, absmax and packing with FP4's code book (bnb-fp4-int8-format.md
// Part A); the scalar reference only (its table row below), CUDA's rule with an exact
// reciprocal.
size_t fp4_quantize_ref(const void* src, DType dtype, size_t n, size_t blocksize, uint8_t* packed, float* absmax);
void fp4_dequantize_ref(const uint8_t* packed, const float* absmax, size_t n, size_t blocksize, float* out);
void fp4_dequantize_bf16_ref(const uint8_t* packed, const float* absmax, size_t n, size_t blocksize,
                             uint16_t* out);
const Nf4Backend& fp4_reference_backend();

// A 4-bit type's code book (what quant_map stores) and the code of a scaled value.
inline const float* bnb4_code(BnbType t) { return t == BnbType::kFp4 ? kFp4Code : kNf4Code; }
inline uint8_t bnb4_code_of(BnbType t, float s) { return t == BnbType::kFp4 ? fp4_code_of(s) : nf4_code_of(s); }
// The kernels for type `t`: `nf4` (the vector or device backend chosen) for NF4, FP4's
// reference for FP4.
inline const Nf4Backend& bnb4_backend(BnbType t, const Nf4Backend& nf4) {
  return t == BnbType::kFp4 ? fp4_reference_backend() : nf4;
}

}  // namespace sp
