// Magnitude pruning: exact counts, the deterministic tie rule, per-row vs per-tensor,
// the 2:4 pattern, and errors.
#include "ops/prune.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "gtest/gtest.h"

namespace sp {
namespace {

std::vector<float> random_weight(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> w(n);
  for (auto& x : w) x = nd(rng);
  return w;
}

size_t zeros(std::span<const float> w) { return static_cast<size_t>(std::count(w.begin(), w.end(), 0.0f)); }

TEST(Prune, CountIsFloorOfSparsityTimesSize) {
  EXPECT_EQ(prune_count(0.3, 11008), 3302u);  // 3302.4
  EXPECT_EQ(prune_count(0.5, 7), 3u);
  EXPECT_EQ(prune_count(0.29, 100), 29u);    // 28.999999999999996 in binary
  EXPECT_EQ(prune_count(0.7, 10), 7u);
  EXPECT_EQ(prune_count(0.0, 10), 0u);
  EXPECT_EQ(prune_count(0.999, 10), 9u);
}

TEST(Prune, PerTensorExactCountRemovesTheSmallest) {
  auto w = random_weight(64 * 172, 1);
  const auto orig = w;
  auto st = prune_magnitude(w, 64, 172, PruneScope::kTensor, 0.3);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->pruned, 3302u);
  EXPECT_EQ(st->zeros, 3302u);
  EXPECT_EQ(zeros(w), 3302u);
  // Every pruned magnitude <= every kept magnitude.
  float max_pruned = 0, min_kept = INFINITY;
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i] == 0) max_pruned = std::max(max_pruned, std::fabs(orig[i]));
    else {
      min_kept = std::min(min_kept, std::fabs(w[i]));
      EXPECT_EQ(w[i], orig[i]);  // survivors untouched
    }
  }
  EXPECT_LE(max_pruned, min_kept);
  EXPECT_NEAR(st->sparsity(), 0.3, 1e-4);
}

TEST(Prune, TiesPruneLowerIndexFirst) {
  std::vector<float> w = {0.5f, -0.5f, 0.5f, 2.0f, -0.5f, 3.0f};
  auto st = prune_magnitude(w, 1, 6, PruneScope::kTensor, 0.5);  // k = 3 of the four 0.5s
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(w, (std::vector<float>{0.0f, 0.0f, 0.0f, 2.0f, -0.5f, 3.0f}));
}

TEST(Prune, ExistingZerosArePrunedFirstAndCounted) {
  std::vector<float> w = {0.0f, 0.0f, 0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f};
  auto st = prune_magnitude(w, 2, 4, PruneScope::kTensor, 0.25);  // k = 2
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->pruned, 2u);
  EXPECT_EQ(st->zeros, 3u);  // the third zero was already there
  EXPECT_EQ(w[3], 1.0f);
}

TEST(Prune, PerRowGivesEveryRowTheSameCount) {
  auto w = random_weight(64 * 172, 2);
  // Make row 0 tiny so that per-tensor and per-row differ.
  for (int c = 0; c < 172; ++c) w[c] *= 1e-3f;
  auto per_tensor = w;
  auto st = prune_magnitude(w, 64, 172, PruneScope::kRow, 0.3);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->pruned, 64u * 51u);  // floor(0.3 * 172) = 51 per row
  for (int r = 0; r < 64; ++r) EXPECT_EQ(zeros({w.data() + r * 172, 172}), 51u) << r;
  ASSERT_TRUE(prune_magnitude(per_tensor, 64, 172, PruneScope::kTensor, 0.3).ok());
  EXPECT_EQ(zeros({per_tensor.data(), 172}), 172u);  // per tensor empties the tiny row
  EXPECT_NE(w, per_tensor);
}

TEST(Prune, TwoFourPattern) {
  auto w = random_weight(32 * 64, 3);
  const auto orig = w;
  auto st = prune_magnitude(w, 32, 64, PruneScope::kTwoFour, 0.0);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->pruned, 32u * 64u / 2);
  EXPECT_DOUBLE_EQ(st->sparsity(), 0.5);
  for (size_t g = 0; g < w.size(); g += 4) {
    int z = 0;
    float max_pruned = 0, min_kept = INFINITY;
    for (size_t j = g; j < g + 4; ++j) {
      if (w[j] == 0) {
        ++z;
        max_pruned = std::max(max_pruned, std::fabs(orig[j]));
      } else {
        min_kept = std::min(min_kept, std::fabs(w[j]));
      }
    }
    ASSERT_EQ(z, 2) << "group " << g / 4;
    ASSERT_LE(max_pruned, min_kept);
  }
  std::vector<float> ties = {1, 1, 1, 1, -2, 2, 2, -2};
  ASSERT_TRUE(prune_magnitude(ties, 1, 8, PruneScope::kTwoFour, 0).ok());
  EXPECT_EQ(ties, (std::vector<float>{0, 0, 1, 1, 0, 0, 2, -2}));
}

TEST(Prune, Errors) {
  std::vector<float> w(12, 1.0f);
  auto e = prune_magnitude(w, 2, 6, PruneScope::kTwoFour, 0);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(std::string(e.status().message()).find("divisible by 4, this weight has 6"), std::string::npos);
  EXPECT_NE(std::string(prune_magnitude(w, 3, 4, PruneScope::kRow, 1.0).status().message()).find("outside [0, 1)"),
            std::string::npos);
  EXPECT_FALSE(prune_magnitude(w, 3, 4, PruneScope::kRow, -0.1).ok());
  w[7] = NAN;
  auto n = prune_magnitude(w, 3, 4, PruneScope::kRow, 0.5);
  ASSERT_FALSE(n.ok());
  EXPECT_NE(std::string(n.status().message()).find("element 7 (row 1, column 3) is nan"), std::string::npos);
  EXPECT_FALSE(prune_magnitude(w, 5, 4, PruneScope::kRow, 0.5).ok());  // size mismatch
}

TEST(Prune, ScopeNames) {
  for (auto s : {PruneScope::kTensor, PruneScope::kRow, PruneScope::kTwoFour})
    EXPECT_EQ(prune_scope_from_name(prune_scope_name(s)), s);
  EXPECT_FALSE(prune_scope_from_name("column").has_value());
}

}  // namespace
}  // namespace sp

namespace sp {
namespace {

// A pruning device (the GPU in a worker) is used when it runs, with the CPU's counts, and
// the CPU selection takes over when it cannot; bad arguments are refused before either.
TEST(PruneDeviceHook, UsedWhenItRunsCpuWhenItCannot) {
  std::vector<float> w0(6 * 40);
  for (size_t i = 0; i < w0.size(); ++i) w0[i] = static_cast<float>((i * 37) % 101) - 50.0f;
  std::vector<float> cpu = w0;
  ASSERT_TRUE(prune_magnitude(cpu, 6, 40, PruneScope::kRow, 0.3).ok());
  int calls = 0;
  PruneDevice works = [&](std::span<float> w, int64_t rows, int64_t cols, PruneScope scope, uint64_t k) {
    ++calls;
    EXPECT_EQ(k, 12u);  // floor(0.3 * 40) per row
    auto r = prune_magnitude(w, rows, cols, scope, 0.3);  // stands in for the kernel
    return r.ok();
  };
  std::vector<float> a = w0;
  auto st = prune_magnitude(a, 6, 40, PruneScope::kRow, 0.3, &works);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(a, cpu);
  EXPECT_EQ(st->pruned, 72u);
  PruneDevice fails = [&](std::span<float>, int64_t, int64_t, PruneScope, uint64_t) {
    ++calls;
    return false;
  };
  std::vector<float> b = w0;
  ASSERT_TRUE(prune_magnitude(b, 6, 40, PruneScope::kRow, 0.3, &fails).ok());
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(b, cpu);
  std::vector<float> nan = w0;
  nan[7] = NAN;
  EXPECT_FALSE(prune_magnitude(nan, 6, 40, PruneScope::kRow, 0.3, &works).ok());
  EXPECT_EQ(calls, 2) << "bad input never reaches the device";
}

}  // namespace
}  // namespace sp
