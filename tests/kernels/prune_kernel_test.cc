// Magnitude pruning on the GPU against ops/prune.cc: the same zeros for per-row, per-tensor
// and 2:4 on odd shapes, heavy ties (repeated values, existing zeros) and a 27392-wide row.
// Skips without a device.
#include <random>

#include "gtest/gtest.h"
#include "kernels/device_info.h"
#include "kernels/prune_cuda.h"
#include "ops/prune.h"

namespace sp {
namespace {

class PruneCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    if (cuda_devices(&error).empty()) GTEST_SKIP() << "no CUDA device: " << error;
  }
};

void expect_parity(const std::vector<float>& w0, int64_t rows, int64_t cols, PruneScope scope, double s) {
  SCOPED_TRACE(::testing::Message() << rows << "x" << cols << " " << prune_scope_name(scope) << " " << s);
  std::vector<float> cpu = w0, gpu = w0;
  ASSERT_TRUE(prune_magnitude(cpu, rows, cols, scope, s).ok());
  const uint64_t k = scope == PruneScope::kRow ? prune_count(s, static_cast<uint64_t>(cols))
                                               : prune_count(s, static_cast<uint64_t>(rows * cols));
  const CudaPruneScope cs = scope == PruneScope::kRow      ? CudaPruneScope::kRow
                            : scope == PruneScope::kTensor ? CudaPruneScope::kTensor
                                                           : CudaPruneScope::kTwoFour;
  ASSERT_EQ(prune_magnitude_cuda(0, gpu.data(), rows, cols, cs, k), "");
  EXPECT_EQ(gpu, cpu);
}

std::vector<float> values(size_t n, uint32_t seed, bool ties) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, 0.05f);
  std::vector<float> v(n);
  for (float& x : v) x = ties ? static_cast<float>(static_cast<int>(rng() % 7) - 3) * 0.01f : nd(rng);
  return v;
}

TEST_F(PruneCuda, SameZerosAsTheCpu) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {3, 77}, {64, 172}, {5, 27392}, {17, 64}})
    for (bool ties : {false, true})
      for (double s : {0.0, 0.3, 0.5, 0.77, 0.999}) {
        const auto w = values(static_cast<size_t>(rows * cols), static_cast<uint32_t>(rows + cols), ties);
        expect_parity(w, rows, cols, PruneScope::kRow, s);
        expect_parity(w, rows, cols, PruneScope::kTensor, s);
        if (cols % 4 == 0) expect_parity(w, rows, cols, PruneScope::kTwoFour, 0.5);
      }
}

}  // namespace
}  // namespace sp
