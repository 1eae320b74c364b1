#include "common/float_convert.h"

#include <cstring>

#include "common/half.h"

namespace sp {

float element_as_float32(std::span<const uint8_t> bytes, DType dtype, size_t i) {
  uint16_t h;
  float f;
  switch (dtype) {
    case DType::kBF16: std::memcpy(&h, bytes.data() + 2 * i, 2); return bf16_to_f32(h);
    case DType::kF16: std::memcpy(&h, bytes.data() + 2 * i, 2); return f16_to_f32(h);
    default: std::memcpy(&f, bytes.data() + 4 * i, 4); return f;
  }
}

std::vector<float> to_float32(std::span<const uint8_t> bytes, DType dtype) {
  const size_t n = bytes.size() / dtype_size(dtype);
  std::vector<float> out(n);
  if (dtype == DType::kF32) {
    std::memcpy(out.data(), bytes.data(), n * 4);
    return out;
  }
  for (size_t i = 0; i < n; ++i) out[i] = element_as_float32(bytes, dtype, i);
  return out;
}

std::vector<uint8_t> from_float32(std::span<const float> values, DType dtype) {
  std::vector<uint8_t> out(values.size() * dtype_size(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    uint16_t h;
    switch (dtype) {
      case DType::kBF16: h = f32_to_bf16(values[i]); std::memcpy(out.data() + 2 * i, &h, 2); break;
      case DType::kF16: h = f32_to_f16(values[i]); std::memcpy(out.data() + 2 * i, &h, 2); break;
      default: std::memcpy(out.data() + 4 * i, &values[i], 4); break;
    }
  }
  return out;
}

}  // namespace sp
