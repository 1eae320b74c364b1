// LLM.int8's row-wise 8-bit weights, as bitsandbytes' Int8Params makes them from a Linear
// weight (bnb-fp4-int8-format.md B.1): the weight rounded to float16, SCB[r] = the row's
// largest |value|, CB[r, j] = round-half-even(value × (127 / SCB[r])) in −127…127 — the
// default (CPU) backend's IEEE arithmetic; an all-zero row has SCB 0 and codes 0.
// Dequantized: CB × SCB × (1/127) (int8_vectorwise_dequant), float32.
//
// Int8RowGrid is the same grid for GPTQ (ops/obs_compress's ElementGrid): each row's SCB
// fixed from the weight, each element's code chosen by the loop.
//
// Thread-safety: pure functions; an Int8RowGrid is used by one loop.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/dtype.h"
#include "common/status.h"
#include "ops/obs_compress.h"

namespace sp {

inline constexpr float kInt8DequantScale = 7.874015718698502e-3f;  // 1/127 as bitsandbytes writes it

struct Int8Rows {
  std::vector<int8_t> codes;  // CB [rows, cols]
  std::vector<float> scb;     // [rows]
};

// The scale of each row from the weight in `dtype` (F32/F16/BF16); a NaN or infinity is an
// INVALID_ARGUMENT naming the element.
absl::StatusOr<std::vector<float>> int8_row_scales(std::span<const uint8_t> bytes, DType dtype, int64_t rows, int64_t cols);
// One element's code under row scale `scb`.
int8_t int8_code_of(float x, float scb);
absl::StatusOr<Int8Rows> int8_quantize(std::span<const uint8_t> bytes, DType dtype, int64_t rows, int64_t cols);
std::vector<float> int8_dequantize(std::span<const int8_t> codes, std::span<const float> scb, int64_t cols);

class Int8RowGrid final : public ElementGrid {
 public:
  Int8RowGrid(std::vector<float> scb, int64_t rows, int64_t cols);
  float snap(int64_t row, int64_t col, float x) override;
  Int8Rows take() { return Int8Rows{std::move(codes_), std::move(scb_)}; }

 private:
  std::vector<float> scb_;
  int64_t cols_;
  std::vector<int8_t> codes_;
};

}  // namespace sp
