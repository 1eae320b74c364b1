// The calibration statistics of one linear input (algorithms.md §b, §d, §h): the Hessian
// H = 2/n * sum over samples of X^T X (n = number of sequences), accumulated in float32
// by an fp32 SYRK per sequence (no half-precision products, no TF32), and Wanda's
// per-channel sum of squares, which is its diagonal.
//
// Thread-safety: one accumulator per thread; not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace sp {

class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t columns);

  // Adds one sequence's inputs x[tokens, columns].
  void add(const float* x, int64_t tokens);

  // H as a full symmetric float32 matrix [c, c], ready for factorisation.
  // INVALID_ARGUMENT when it holds NaN/Inf (a NaN activation poisons every entry) or
  // when no sample was added.
  absl::StatusOr<std::vector<float>> hessian() const;
  // The same without a copy (for the widest inputs): the sums are mirrored and scaled in
  // place and handed over; the accumulator is empty afterwards (hessian() then fails).
  absl::StatusOr<std::vector<float>> take_hessian();
  // sum over tokens of x_j^2 per column (Wanda's statistic; unscaled).
  std::vector<float> sum_squares() const;

  // For a device that sums elsewhere (the GPU forward): the row-major [c, c] buffer whose
  // upper triangle holds sum X^T X (the lower one is not read), and the number of
  // sequences that went into it.
  float* sums() { return h_.data(); }
  int64_t columns() const { return c_; }
  void count_samples(int64_t sequences) { samples_ += sequences; }

 private:
  // dst = H from the sums in h_ (dst may be h_ itself).
  absl::Status finish(std::vector<float>& dst) const;

  int64_t c_;
  int64_t samples_ = 0;
  std::vector<float> h_;  // upper triangle of sum X^T X, row-major
};

}  // namespace sp
