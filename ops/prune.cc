#include "ops/prune.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <vector>

#include "fmt/format.h"

namespace sp {
namespace {

// |w| as an unsigned key that orders like the magnitude (finite inputs only).
inline uint32_t mag_key(float x) { return std::bit_cast<uint32_t>(x) & 0x7fffffffu; }

// Marks (mask = 1) the k smallest-|g| entries of `g` (ties: lowest index first).
// `scratch` is reused between calls to keep allocations out of the row loop.
void select_group(std::span<const float> g, uint64_t k, std::vector<uint32_t>& scratch, uint8_t* mask) {
  if (k == 0) return;
  if (k >= g.size()) {
    std::fill(mask, mask + g.size(), uint8_t{1});
    return;
  }
  scratch.resize(g.size());
  for (size_t i = 0; i < g.size(); ++i) scratch[i] = mag_key(g[i]);
  // Threshold T = the k-th smallest key: every key < T is selected, and the first
  // (k - count(< T)) entries equal to T, in index order.
  std::nth_element(scratch.begin(), scratch.begin() + static_cast<ptrdiff_t>(k - 1), scratch.end());
  const uint32_t t = scratch[k - 1];
  uint64_t below = 0;
  for (float x : g) below += mag_key(x) < t;
  uint64_t ties = k - below;
  for (size_t i = 0; i < g.size(); ++i) {
    const uint32_t key = mag_key(g[i]);
    if (key < t || (key == t && ties > 0)) {
      ties -= key == t;
      mask[i] = 1;
    }
  }
}

void select_two_four(std::span<const float> row, uint8_t* mask) {
  for (size_t j = 0; j + 4 <= row.size(); j += 4) {
    int idx[4] = {0, 1, 2, 3};
    std::stable_sort(idx, idx + 4, [&](int a, int b) { return mag_key(row[j + a]) < mag_key(row[j + b]); });
    mask[j + idx[0]] = 1;
    mask[j + idx[1]] = 1;
  }
}

absl::Status check_prune_args(std::span<const float> w, int64_t rows, int64_t cols, PruneScope scope,
                              double sparsity) {
  if (rows < 0 || cols < 0 || static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols) != w.size())
    return absl::InvalidArgumentError(fmt::format("{} values given for a {}x{} weight", w.size(), rows, cols));
  if (scope != PruneScope::kTwoFour && !(sparsity >= 0.0 && sparsity < 1.0))
    return absl::InvalidArgumentError(fmt::format("sparsity {} is outside [0, 1)", sparsity));
  if (scope == PruneScope::kTwoFour && cols % 4 != 0)
    return absl::InvalidArgumentError(fmt::format(
        "2:4 pruning needs a column count divisible by 4, this weight has {}", cols));
  for (size_t i = 0; i < w.size(); ++i) {
    if (!std::isfinite(w[i]))
      return absl::InvalidArgumentError(fmt::format("element {} (row {}, column {}) is {}", i,
                                                    i / static_cast<size_t>(std::max<int64_t>(cols, 1)),
                                                    i % static_cast<size_t>(std::max<int64_t>(cols, 1)), w[i]));
  }
  return absl::OkStatus();
}

}  // namespace

uint64_t prune_count(double sparsity, uint64_t n) {
  const double exact = sparsity * static_cast<double>(n);
  const double nearest = std::round(exact);
  if (std::fabs(exact - nearest) < 1e-9 * std::max(1.0, exact)) return static_cast<uint64_t>(nearest);
  return static_cast<uint64_t>(std::floor(exact));
}

absl::StatusOr<std::vector<uint8_t>> prune_mask(std::span<const float> score, int64_t rows, int64_t cols,
                                                PruneScope scope, double sparsity) {
  SP_RETURN_IF_ERROR(check_prune_args(score, rows, cols, scope, sparsity));
  std::vector<uint8_t> mask(score.size(), 0);
  std::vector<uint32_t> scratch;
  switch (scope) {
    case PruneScope::kTensor: select_group(score, prune_count(sparsity, score.size()), scratch, mask.data()); break;
    case PruneScope::kRow: {
      const uint64_t k = prune_count(sparsity, static_cast<uint64_t>(cols));
      for (int64_t r = 0; r < rows; ++r)
        select_group(score.subspan(static_cast<size_t>(r * cols), static_cast<size_t>(cols)), k, scratch,
                     mask.data() + r * cols);
      break;
    }
    case PruneScope::kTwoFour:
      for (int64_t r = 0; r < rows; ++r)
        select_two_four(score.subspan(static_cast<size_t>(r * cols), static_cast<size_t>(cols)), mask.data() + r * cols);
      break;
  }
  return mask;
}

PruneStats apply_mask(std::span<float> w, std::span<const uint8_t> mask) {
  PruneStats st;
  st.total = w.size();
  for (size_t i = 0; i < w.size(); ++i)
    if (mask[i]) {
      w[i] = 0.0f;
      ++st.pruned;
    }
  st.zeros = static_cast<uint64_t>(std::count(w.begin(), w.end(), 0.0f));
  return st;
}

absl::StatusOr<PruneStats> prune_magnitude(std::span<float> w, int64_t rows, int64_t cols,
                                           PruneScope scope, double sparsity, const PruneDevice* device) {
  if (device && *device) {
    SP_RETURN_IF_ERROR(check_prune_args(w, rows, cols, scope, sparsity));
    const uint64_t k = scope == PruneScope::kRow ? prune_count(sparsity, static_cast<uint64_t>(cols))
                                                 : prune_count(sparsity, w.size());
    if ((*device)(w, rows, cols, scope, k)) {
      PruneStats st;
      st.total = w.size();
      st.pruned = scope == PruneScope::kRow ? k * static_cast<uint64_t>(rows)
                  : scope == PruneScope::kTensor ? k
                                                 : w.size() / 2;
      st.zeros = static_cast<uint64_t>(std::count(w.begin(), w.end(), 0.0f));
      return st;
    }
  }
  SP_ASSIGN_OR_RETURN(std::vector<uint8_t> mask, prune_mask(w, rows, cols, scope, sparsity));
  return apply_mask(w, mask);
}

}  // namespace sp
