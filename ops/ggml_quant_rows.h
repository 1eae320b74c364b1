// The row quantizers and dequantizers behind ops/ggml_quants' table, one pair per ggml
// type. A quantizer takes `nrows` rows of `n_per_row` floats (whole blocks) and the
// importance vector of the row's columns (`qw`, n_per_row values, or null): without it the
// reference `_ref` rules, with it the `_impl` rules (../shared/docs/gguf-format.md §6).
// Internal to ops/ggml_quants*.
#pragma once

#include <cstdint>

namespace sp::ggml {

#define SP_GGML_ROW_FNS(T)                                                                  \
  void quantize_##T(const float* x, uint8_t* out, int64_t nrows, int64_t n_per_row, const float* qw); \
  void dequantize_##T(const uint8_t* in, float* y, int64_t n);

SP_GGML_ROW_FNS(q4_0)
SP_GGML_ROW_FNS(q4_1)
SP_GGML_ROW_FNS(q5_0)
SP_GGML_ROW_FNS(q5_1)
SP_GGML_ROW_FNS(q8_0)
SP_GGML_ROW_FNS(iq4_nl)
SP_GGML_ROW_FNS(q4_k)
SP_GGML_ROW_FNS(q5_k)
SP_GGML_ROW_FNS(q6_k)

#undef SP_GGML_ROW_FNS

}  // namespace sp::ggml
