#include "ops/hessian.h"

#include <algorithm>
#include <cmath>

#include "fmt/format.h"
#include "ops/linalg.h"

namespace sp {

HessianAccumulator::HessianAccumulator(int64_t columns)
    : c_(columns), h_(static_cast<size_t>(columns * columns), 0.0f) {}

void HessianAccumulator::add(const float* x, int64_t tokens) {
  syrk_upper_accumulate(x, tokens, c_, h_.data());
  ++samples_;
}

absl::Status HessianAccumulator::finish(std::vector<float>& dst) const {
  if (samples_ == 0) return absl::FailedPreconditionError("no calibration samples were seen");
  const float scale = static_cast<float>(2.0 / static_cast<double>(samples_));
  // Mirrored tile by tile so that the transposed writes stay in cache (27392^2 entries
  // for a 32B down_proj). In place is safe: only the upper triangle is read, and it is
  // read before its own entry is written.
  constexpr int64_t kTile = 64;
  for (int64_t i0 = 0; i0 < c_; i0 += kTile)
    for (int64_t j0 = i0; j0 < c_; j0 += kTile)
      for (int64_t i = i0; i < std::min(i0 + kTile, c_); ++i)
        for (int64_t j = std::max(i, j0); j < std::min(j0 + kTile, c_); ++j) {
          const float v = h_[i * c_ + j];
          if (!std::isfinite(v))
            return absl::InvalidArgumentError(fmt::format(
                "the Hessian holds {} at ({}, {}): the calibration activations are not finite", v, i, j));
          dst[i * c_ + j] = dst[j * c_ + i] = v * scale;
        }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> HessianAccumulator::hessian() const {
  std::vector<float> h(h_.size());
  SP_RETURN_IF_ERROR(finish(h));
  return h;
}

absl::StatusOr<std::vector<float>> HessianAccumulator::take_hessian() {
  SP_RETURN_IF_ERROR(finish(h_));
  samples_ = 0;
  return std::move(h_);
}

std::vector<float> HessianAccumulator::sum_squares() const {
  std::vector<float> d(static_cast<size_t>(c_));
  for (int64_t j = 0; j < c_; ++j) d[j] = h_[j * c_ + j];
  return d;
}

}  // namespace sp
