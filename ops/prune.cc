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

// Zeroes the k smallest-|w| entries of `g` (ties: lowest index first). `scratch` is
// reused between calls to keep allocations out of the row loop.
void prune_group(std::span<float> g, uint64_t k, std::vector<uint32_t>& scratch) {
  if (k == 0) return;
  if (k >= g.size()) {
    std::fill(g.begin(), g.end(), 0.0f);
    return;
  }
  scratch.resize(g.size());
  for (size_t i = 0; i < g.size(); ++i) scratch[i] = mag_key(g[i]);
  // Threshold T = the k-th smallest key: every key < T is pruned, and the first
  // (k - count(< T)) entries equal to T, in index order.
  std::nth_element(scratch.begin(), scratch.begin() + static_cast<ptrdiff_t>(k - 1), scratch.end());
  const uint32_t t = scratch[k - 1];
  uint64_t below = 0;
  for (float x : g) below += mag_key(x) < t;
  uint64_t ties_to_prune = k - below;
  for (float& x : g) {
    const uint32_t key = mag_key(x);
    if (key < t) {
      x = 0.0f;
    } else if (key == t && ties_to_prune > 0) {
      x = 0.0f;
      --ties_to_prune;
    }
  }
}

void prune_two_four(std::span<float> row) {
  for (size_t j = 0; j + 4 <= row.size(); j += 4) {
    int idx[4] = {0, 1, 2, 3};
    std::stable_sort(idx, idx + 4, [&](int a, int b) { return mag_key(row[j + a]) < mag_key(row[j + b]); });
    row[j + idx[0]] = 0.0f;
    row[j + idx[1]] = 0.0f;
  }
}

}  // namespace

std::string_view prune_scope_name(PruneScope s) {
  switch (s) {
    case PruneScope::kTensor: return "tensor";
    case PruneScope::kRow: return "row";
    case PruneScope::kTwoFour: return "2:4";
  }
  return "?";
}

std::optional<PruneScope> prune_scope_from_name(std::string_view name) {
  if (name == "tensor") return PruneScope::kTensor;
  if (name == "row") return PruneScope::kRow;
  if (name == "2:4") return PruneScope::kTwoFour;
  return std::nullopt;
}

uint64_t prune_count(double sparsity, uint64_t n) {
  const double exact = sparsity * static_cast<double>(n);
  const double nearest = std::round(exact);
  if (std::fabs(exact - nearest) < 1e-9 * std::max(1.0, exact)) return static_cast<uint64_t>(nearest);
  return static_cast<uint64_t>(std::floor(exact));
}

absl::StatusOr<PruneStats> prune_magnitude(std::span<float> w, int64_t rows, int64_t cols,
                                           PruneScope scope, double sparsity) {
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
  PruneStats st;
  st.total = w.size();
  std::vector<uint32_t> scratch;
  switch (scope) {
    case PruneScope::kTensor:
      st.pruned = prune_count(sparsity, w.size());
      prune_group(w, st.pruned, scratch);
      break;
    case PruneScope::kRow: {
      const uint64_t k = prune_count(sparsity, static_cast<uint64_t>(cols));
      for (int64_t r = 0; r < rows; ++r)
        prune_group(w.subspan(static_cast<size_t>(r * cols), static_cast<size_t>(cols)), k, scratch);
      st.pruned = k * static_cast<uint64_t>(rows);
      break;
    }
    case PruneScope::kTwoFour:
      for (int64_t r = 0; r < rows; ++r)
        prune_two_four(w.subspan(static_cast<size_t>(r * cols), static_cast<size_t>(cols)));
      st.pruned = w.size() / 2;
      break;
  }
  st.zeros = static_cast<uint64_t>(std::count(w.begin(), w.end(), 0.0f));
  return st;
}

}  // namespace sp
