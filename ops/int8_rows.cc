#include "ops/int8_rows.h"

#include <cmath>

#include "common/float_convert.h"
#include "common/half.h"
#include "fmt/format.h"

namespace sp {

absl::StatusOr<std::vector<float>> int8_row_scales(std::span<const uint8_t> bytes, DType dtype, int64_t rows,
                                                   int64_t cols) {
  const std::vector<float> x = to_float32(bytes, dtype);
  if (x.size() != static_cast<size_t>(rows * cols))
    return absl::InvalidArgumentError(fmt::format("{} values for a {}x{} weight", x.size(), rows, cols));
  std::vector<float> scb(static_cast<size_t>(rows), 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      const float v = x[r * cols + j];
      if (!std::isfinite(v))
        return absl::InvalidArgumentError(fmt::format("element {} (row {}, column {}) is {}; int8 cannot encode it",
                                                      r * cols + j, r, j, v));
      scb[r] = std::fmax(scb[r], std::fabs(f16_to_f32(f32_to_f16(v))));  // the float16 weight's absmax
    }
  return scb;
}

int8_t int8_code_of(float x, float scb) {
  if (!(scb > 0.0f)) return 0;  // an all-zero row
  const float b = f16_to_f32(f32_to_f16(x));  // B = W.to(float16)
  const float q = std::nearbyint(b * (127.0f / scb));  // round half to even (the default rounding mode)
  return static_cast<int8_t>(std::fmin(127.0f, std::fmax(-127.0f, q)));
}

absl::StatusOr<Int8Rows> int8_quantize(std::span<const uint8_t> bytes, DType dtype, int64_t rows, int64_t cols) {
  SP_ASSIGN_OR_RETURN(std::vector<float> scb, int8_row_scales(bytes, dtype, rows, cols));
  const std::vector<float> x = to_float32(bytes, dtype);
  Int8Rows out;
  out.codes.resize(x.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) out.codes[r * cols + j] = int8_code_of(x[r * cols + j], scb[r]);
  out.scb = std::move(scb);
  return out;
}

std::vector<float> int8_dequantize(std::span<const int8_t> codes, std::span<const float> scb, int64_t cols) {
  std::vector<float> out(codes.size());
  for (size_t i = 0; i < codes.size(); ++i)
    out[i] = static_cast<float>(codes[i]) * scb[i / static_cast<size_t>(cols)] * kInt8DequantScale;
  return out;
}

Int8RowGrid::Int8RowGrid(std::vector<float> scb, int64_t rows, int64_t cols)
    : scb_(std::move(scb)), cols_(cols), codes_(static_cast<size_t>(rows * cols), 0) {}

float Int8RowGrid::snap(int64_t row, int64_t col, float x) {
  const int8_t c = int8_code_of(x, scb_[row]);
  codes_[row * cols_ + col] = c;
  return static_cast<float>(c) * scb_[row] * kInt8DequantScale;
}

}  // namespace sp
