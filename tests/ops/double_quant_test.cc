#include "ops/double_quant.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "gtest/gtest.h"

namespace sp {
namespace {

TEST(DynamicMap, ShapeOfTheSignedMap) {
  const auto& m = dynamic_map_signed();
  for (size_t i = 1; i < 256; ++i) ASSERT_LT(m[i - 1], m[i]) << i;
  EXPECT_EQ(m[127], 0.0f);
  EXPECT_EQ(m[255], 1.0f);
  EXPECT_FLOAT_EQ(m[0], -0.992968738079071f);
  EXPECT_FLOAT_EQ(m[254], 0.992968738079071f);
  EXPECT_FLOAT_EQ(m[128], 5.500000384017767e-07f);  // smallest magnitude
}

TEST(DynamicMap, SearchFindsNearestWithTiesToEven) {
  const auto& m = dynamic_map_signed();
  for (size_t i = 0; i < 256; ++i) EXPECT_EQ(dynamic_code_of(m.data(), m[i]), i) << i;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int k = 0; k < 20000; ++k) {
    const float x = u(rng);
    const uint8_t q = dynamic_code_of(m.data(), x);
    // No entry is strictly closer.
    for (size_t i = 0; i < 256; ++i) ASSERT_LE(std::fabs(m[q] - x), std::fabs(m[i] - x)) << x;
  }
  // An exact midpoint between entries 200 and 201 goes to the even index, 200.
  const float mid = (m[200] + m[201]) * 0.5f;
  EXPECT_EQ(dynamic_code_of(m.data(), mid), 200);
  const float mid2 = (m[201] + m[202]) * 0.5f;
  EXPECT_EQ(dynamic_code_of(m.data(), mid2), 202);
}

TEST(DoubleQuant, RoundTripErrorWithinHalfTheWidestGap) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(0.001f, 0.2f);
  std::vector<float> absmax(1000);
  for (auto& a : absmax) a = u(rng);
  const auto dq = double_quantize(absmax);
  EXPECT_EQ(dq.codes.size(), 1000u);
  EXPECT_EQ(dq.nested_absmax.size(), 4u);
  EXPECT_FLOAT_EQ(dq.offset, absmax_mean(absmax));
  std::vector<float> back(1000);
  double_dequantize(dq.codes, dq.nested_absmax, dq.offset, dq.map.data(), back.data());
  // nf4-format.md §6: the error is at most half the widest gap of the map (0.0140625 / 2
  // = 0.00703125, between the largest entries) times nested_absmax, plus the float32
  // rounding of centring, scaling and map[q] * nested_absmax + offset (a few ulp of
  // absmax and of nested_absmax).
  float widest = 0;
  for (size_t i = 1; i < 256; ++i) widest = std::max(widest, dq.map[i] - dq.map[i - 1]);
  EXPECT_NEAR(widest, 0.0140625f, 1e-6f);
  for (size_t i = 0; i < 1000; ++i)
    EXPECT_LE(std::fabs(back[i] - absmax[i]), widest / 2 * dq.nested_absmax[i / 256] +
                                                  4 * std::ldexp(absmax[i] + dq.nested_absmax[i / 256], -23))
        << i;
}

TEST(DoubleQuant, ConstantAbsmaxDecodesToItself) {
  std::vector<float> absmax(300, 0.25f);
  const auto dq = double_quantize(absmax);
  std::vector<float> back(300);
  double_dequantize(dq.codes, dq.nested_absmax, dq.offset, dq.map.data(), back.data());
  for (float b : back) EXPECT_EQ(b, 0.25f);
}

}  // namespace
}  // namespace sp
