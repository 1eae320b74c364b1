// Refusing NaN and infinity in weights: a checkpoint must never keep them (transformers
// would load it and every output would be NaN), and a calibration must not start from
// them (the error would surface later, naming an activation instead of the weight).
// Integer tensors (U8 codes, I32 ids) are always finite.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "common/dtype.h"
#include "common/status.h"

namespace sp {

// Index of the first NaN/Inf element of `bytes` read as `dtype`, if any (bit tests on the
// exponent: no conversion, a few GB/s).
std::optional<size_t> first_nonfinite(std::span<const uint8_t> bytes, DType dtype);

// INVALID_ARGUMENT naming the tensor and element when one is NaN/Inf:
//   "model.norm.weight: element 3 is nan: the weights hold NaN or infinity ..."
// With a 2-D `shape` the element's row and column are named too.
absl::Status check_finite(std::string_view name, std::span<const uint8_t> bytes, DType dtype,
                          std::span<const int64_t> shape);

}  // namespace sp
