// Converting tensor bytes of a float dtype (F32, F16, BF16) to and from float32.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/dtype.h"

namespace sp {

// Element i of `bytes` (little-endian, dtype F32/F16/BF16) as float32; exact.
float element_as_float32(std::span<const uint8_t> bytes, DType dtype, size_t i);
// All elements as float32; exact. `dtype` must be F32, F16 or BF16.
std::vector<float> to_float32(std::span<const uint8_t> bytes, DType dtype);
// float32 values stored as `dtype` (round to nearest even for F16/BF16).
std::vector<uint8_t> from_float32(std::span<const float> values, DType dtype);

}  // namespace sp
