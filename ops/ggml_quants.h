// llama.cpp's tensor types (ggml_type) as one traits table: name, ggml id, block size,
// bytes per block, and the scalar reference quantizer and dequantizer of each — the spec
// (../shared/docs/gguf-format.md §5-§6, written from ggml-quants.c at the version of the
// shared tools). The quantizers reproduce llama-quantize's bytes: every operation in
// float32, in the order the reference writes it, no fused multiply-add (the project
// builds with -ffp-contract=off), C's roundf / nearest_int as there.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace sp {

enum class GgmlType : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8,
  kQ4_K = 12, kQ5_K = 13, kQ6_K = 14, kIQ4_NL = 20, kBF16 = 30,
};

struct GgmlTypeTraits {
  GgmlType type;
  std::string_view name;  // as llama.cpp prints it ("Q4_0")
  int64_t block = 1;      // elements per block
  int64_t block_bytes = 4;
  uint32_t file_type = 0;  // general.file_type (llama_ftype) of a file mostly of this type
  // Quantizes `nrows` rows of `n_per_row` floats (a multiple of `block`: rows never share a
  // block) into nrows * n_per_row / block * block_bytes bytes. `qw`: the importance of each
  // of the row's columns (llama.cpp's imatrix values / ncall), or null; types that have no
  // weighted rule ignore it.
  void (*quantize)(const float* x, uint8_t* out, int64_t nrows, int64_t n_per_row, const float* qw) = nullptr;
  void (*dequantize)(const uint8_t* in, float* y, int64_t n) = nullptr;
};

// Every type shardpress writes, in ggml id order.
std::span<const GgmlTypeTraits> ggml_types();
const GgmlTypeTraits& ggml_traits(GgmlType t);
std::optional<GgmlType> ggml_type_from_name(std::string_view name);  // case-insensitive
// "F32, F16, BF16, Q8_0, Q4_0" for messages.
std::string ggml_type_names();

// Bytes of `n` elements (`n` a multiple of the block) in type `t`.
inline uint64_t ggml_nbytes(GgmlType t, int64_t n) {
  const GgmlTypeTraits& tr = ggml_traits(t);
  return static_cast<uint64_t>(n / tr.block * tr.block_bytes);
}

// Quantizes `x` (rows of `row` elements) into type `t`; `row` must be a multiple of its
// block. `importance`: empty, or one value per column (`row` values). Rows are split over
// `threads` (every row is quantized alone: the bytes do not depend on the split).
std::vector<uint8_t> ggml_quantize(GgmlType t, std::span<const float> x, int64_t row, int threads = 1,
                                   std::span<const float> importance = {});
std::vector<float> ggml_dequantize(GgmlType t, std::span<const uint8_t> bytes, int64_t n);

}  // namespace sp
