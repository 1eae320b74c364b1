// OpenBLAS-backed ops against their scalar references, on odd shapes.
#include "ops/linalg.h"

#include <random>

#include "gtest/gtest.h"

namespace sp {
namespace {

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

TEST(Linalg, MatmulMatchesReferenceOnOddShapes) {
  for (auto [m, k, n] : {std::tuple{1, 1, 1}, {3, 77, 5}, {17, 64, 172}, {33, 5, 129}}) {
    const auto x = randn(m * k, 1), w = randn(n * k, 2);
    std::vector<float> y(m * n), r(m * n);
    matmul_nt(x.data(), m, k, w.data(), n, y.data());
    matmul_nt_ref(x.data(), m, k, w.data(), n, r.data());
    for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], r[i], 1e-4 * (1 + std::fabs(r[i]))) << m << "x" << k;
  }
}

TEST(Linalg, SyrkAccumulatesTheUpperTriangle) {
  const int t = 37, c = 19;
  const auto x = randn(t * c, 3);
  std::vector<float> h(c * c, 1.0f), r(c * c, 1.0f);
  syrk_upper_accumulate(x.data(), t, c, h.data());
  syrk_upper_accumulate_ref(x.data(), t, c, r.data());
  for (int i = 0; i < c; ++i)
    for (int j = i; j < c; ++j) EXPECT_NEAR(h[i * c + j], r[i * c + j], 1e-4 * (1 + std::fabs(r[i * c + j])));
}

TEST(Linalg, InverseCholeskyMatchesReferenceAndDefinition) {
  const int c = 23, t = 60;
  const auto x = randn(t * c, 4);
  std::vector<double> h(c * c, 0.0);
  for (int i = 0; i < c; ++i)
    for (int j = 0; j < c; ++j)
      for (int p = 0; p < t; ++p) h[i * c + j] += static_cast<double>(x[p * c + i]) * x[p * c + j];
  auto u = inverse_cholesky_upper(h, c);
  auto r = inverse_cholesky_upper_ref(h, c);
  ASSERT_TRUE(u.ok() && r.ok());
  for (int i = 0; i < c * c; ++i) EXPECT_NEAR((*u)[i], (*r)[i], 1e-5 * (1 + std::fabs((*r)[i])));
  // U^T U H = I.
  for (int i = 0; i < c; ++i)
    for (int j = 0; j < c; ++j) {
      double s = 0;
      for (int k = 0; k < c; ++k) {
        double inv_ik = 0;
        for (int m = 0; m < c; ++m) inv_ik += static_cast<double>((*u)[m * c + i]) * (*u)[m * c + k];
        s += inv_ik * h[k * c + j];
      }
      EXPECT_NEAR(s, i == j ? 1.0 : 0.0, 1e-3);
    }
  for (int i = 0; i < c; ++i)
    for (int j = 0; j < i; ++j) EXPECT_EQ((*u)[i * c + j], 0.0f);
  std::vector<float> inplace(h.begin(), h.end());
  ASSERT_TRUE(inverse_cholesky_upper_inplace(inplace, c).ok());
  for (int i = 0; i < c * c; ++i) EXPECT_NEAR(inplace[i], (*r)[i], 1e-4 * (1 + std::fabs((*r)[i])));
}

TEST(Linalg, SingularMatrixIsAFailedPrecondition) {
  std::vector<double> h = {1, 1, 1, 1};  // rank 1
  auto u = inverse_cholesky_upper(h, 2);
  EXPECT_EQ(u.status().code(), absl::StatusCode::kFailedPrecondition);
  std::vector<float> f = {1, 1, 1, 1};
  EXPECT_EQ(inverse_cholesky_upper_inplace(f, 2).code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace sp
