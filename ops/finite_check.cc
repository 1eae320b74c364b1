#include "ops/finite_check.h"

#include <cstring>

#include "common/float_convert.h"
#include "fmt/format.h"

namespace sp {

namespace {

// All-ones exponent: NaN or infinity. Scans in blocks with an OR that the compiler
// vectorises, then finds the element in the block that has one.
template <typename U>
std::optional<size_t> first_with_exponent(std::span<const uint8_t> bytes, U mask) {
  const size_t n = bytes.size() / sizeof(U);
  constexpr size_t kBlock = 1024;
  for (size_t b = 0; b < n; b += kBlock) {
    const size_t e = std::min(n, b + kBlock);
    U hit = 0;
    for (size_t i = b; i < e; ++i) {
      U v;
      std::memcpy(&v, bytes.data() + i * sizeof(U), sizeof(U));
      hit |= static_cast<U>((v & mask) == mask);
    }
    if (!hit) continue;
    for (size_t i = b; i < e; ++i) {
      U v;
      std::memcpy(&v, bytes.data() + i * sizeof(U), sizeof(U));
      if ((v & mask) == mask) return i;
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<size_t> first_nonfinite(std::span<const uint8_t> bytes, DType dtype) {
  switch (dtype) {
    case DType::kF32: return first_with_exponent<uint32_t>(bytes, 0x7f800000u);
    case DType::kBF16: return first_with_exponent<uint16_t>(bytes, 0x7f80u);
    case DType::kF16: return first_with_exponent<uint16_t>(bytes, 0x7c00u);
    case DType::kF64: return first_with_exponent<uint64_t>(bytes, 0x7ff0000000000000ull);
    default: return std::nullopt;
  }
}

absl::Status check_finite(std::string_view name, std::span<const uint8_t> bytes, DType dtype,
                          std::span<const int64_t> shape) {
  const auto bad = first_nonfinite(bytes, dtype);
  if (!bad) return absl::OkStatus();
  const std::string where = shape.size() == 2 && shape[1] > 0
                                ? fmt::format("element {} (row {}, column {})", *bad, *bad / shape[1], *bad % shape[1])
                                : fmt::format("element {}", *bad);
  const double v = dtype == DType::kF64 ? [&] {
    double d;
    std::memcpy(&d, bytes.data() + *bad * 8, 8);
    return d;
  }()
                                        : static_cast<double>(element_as_float32(bytes, dtype, *bad));
  return absl::InvalidArgumentError(fmt::format(
      "{}: {} is {}: the weights hold NaN or infinity (a damaged or diverged checkpoint?); nothing is written", name,
      where, v));
}

}  // namespace sp
