#include "ops/hessian.h"

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

absl::StatusOr<std::vector<float>> HessianAccumulator::hessian() const {
  if (samples_ == 0) return absl::FailedPreconditionError("no calibration samples were seen");
  std::vector<float> h(h_.size());
  const float scale = static_cast<float>(2.0 / static_cast<double>(samples_));
  for (int64_t i = 0; i < c_; ++i)
    for (int64_t j = i; j < c_; ++j) {
      const float v = h_[i * c_ + j];
      if (!std::isfinite(v))
        return absl::InvalidArgumentError(fmt::format(
            "the Hessian holds {} at ({}, {}): the calibration activations are not finite", v, i, j));
      h[i * c_ + j] = h[j * c_ + i] = v * scale;
    }
  return h;
}

std::vector<float> HessianAccumulator::sum_squares() const {
  std::vector<float> d(static_cast<size_t>(c_));
  for (int64_t j = 0; j < c_; ++j) d[j] = h_[j * c_ + j];
  return d;
}

}  // namespace sp
