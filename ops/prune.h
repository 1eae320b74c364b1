// Magnitude pruning of one linear weight (shared/docs/algorithms.md §a), in place on a
// float32 copy of the weight (converting back to bf16/f16 afterwards is exact).
//
// Exact counts: k = floor(sparsity * group size) entries with the smallest |w| are set to
// zero in each group (the whole tensor, or each output row). Ties in |w| are broken by
// position: the lower flattened index is pruned first, so results are deterministic.
// 2:4: in each row, each run of 4 consecutive columns keeps its 2 largest |w| (ties: lower
// column pruned first); requires cols % 4 == 0.
//
// Thread-safety: pure function of its arguments.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "common/name_table.h"
#include "common/status.h"

namespace sp {

enum class PruneScope { kTensor, kRow, kTwoFour };
inline constexpr NameRow<PruneScope> kPruneScopeNames[] = {
    {PruneScope::kTensor, "tensor"}, {PruneScope::kRow, "row"}, {PruneScope::kTwoFour, "2:4"}};

// "tensor", "row", "2:4".
inline std::string_view prune_scope_name(PruneScope s) { return name_of(kPruneScopeNames, s); }
inline std::optional<PruneScope> prune_scope_from_name(std::string_view name) { return value_of(kPruneScopeNames, name); }

struct PruneStats {
  uint64_t total = 0;   // elements
  uint64_t pruned = 0;  // entries selected and set to zero (the exact count asked for)
  uint64_t zeros = 0;   // zeros after pruning (>= pruned if the weight had zeros already)
  double sparsity() const { return total ? static_cast<double>(zeros) / static_cast<double>(total) : 0.0; }
};

// Number of entries pruned from a group of `n` at `sparsity`: floor(sparsity * n), where
// a product within 1e-9 of an integer counts as that integer (0.29 * 100 prunes 29).
uint64_t prune_count(double sparsity, uint64_t n);

// Prunes the row-major [rows, cols] weight `w` in place. `sparsity` in [0, 1) is used for
// kTensor and kRow; kTwoFour always prunes 50%. INVALID_ARGUMENT for a sparsity out of
// range, a NaN/Inf weight (naming the element), or 2:4 with cols % 4 != 0.
//
// `device` (optional, e.g. the GPU): zeroes the `k` smallest |w| per group (per row, per
// tensor; ignored for 2:4) with the same tie rule and returns true, or returns false when
// it could not run (the CPU selection then runs). Arguments are checked first either way.
using PruneDevice = std::function<bool(std::span<float> w, int64_t rows, int64_t cols, PruneScope scope, uint64_t k)>;
absl::StatusOr<PruneStats> prune_magnitude(std::span<float> w, int64_t rows, int64_t cols,
                                           PruneScope scope, double sparsity, const PruneDevice* device = nullptr);

// The selection prune_magnitude makes, on any scores (ranked by |score|): mask[i] = 1
// for the entries to prune. Wanda passes |W| * ||X_j||. Same groups, counts, tie rule
// and errors as prune_magnitude.
absl::StatusOr<std::vector<uint8_t>> prune_mask(std::span<const float> score, int64_t rows, int64_t cols,
                                                PruneScope scope, double sparsity);

// Zeroes the masked entries; `pruned` counts the mask.
PruneStats apply_mask(std::span<float> w, std::span<const uint8_t> mask);

}  // namespace sp
