#include "ops/double_quant.h"
#include "ops/nf4.h"

#include <algorithm>
#include <cmath>
#include <limits>
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

// Every backend's codes are the reference search's (dynamic_code_of, the spec), lane by
// lane and in the scalar tails: the map's entries and midpoints and their neighbours,
// values beyond +-1, zeros, infinities and NaN, with the offset and scale applied first.
TEST(DynamicMap, EveryBackendsCodesAreTheReferenceSearchs) {
  const auto& m = dynamic_map_signed();
  std::vector<float> xs = {0.0f, -0.0f, 1.0f, -1.0f, 1.5f, -1.5f, 1e-30f, -1e-30f, std::nanf(""),
                           std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
  for (size_t i = 0; i < 256; ++i) {
    xs.push_back(m[i]);
    if (i + 1 < 256) xs.push_back((m[i] + m[i + 1]) * 0.5f);
    xs.push_back(std::nextafter(m[i], 2.0f));
    xs.push_back(std::nextafter(m[i], -2.0f));
  }
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.1f, 1.1f);
  std::normal_distribution<float> small(0.0f, 0.01f);
  for (int k = 0; k < 200001; ++k) xs.push_back(k % 2 ? u(rng) : small(rng));  // odd count: a tail
  for (const auto& [offset, scale] : std::vector<std::pair<float, float>>{{0.0f, 1.0f}, {0.013f, 37.5f}}) {
    std::vector<uint8_t> want(xs.size());
    for (size_t i = 0; i < xs.size(); ++i) want[i] = dynamic_code_of(m.data(), (xs[i] - offset) * scale);
    for (const auto& b : nf4_backends()) {
      if (!b.available()) continue;
      std::vector<uint8_t> got(xs.size(), 0xAA);
      b.dynamic_codes(m.data(), xs.data(), xs.size(), offset, scale, got.data());
      for (size_t i = 0; i < xs.size(); ++i)
        ASSERT_EQ(got[i], want[i]) << b.name << " x=" << xs[i] << " offset=" << offset << " scale=" << scale;
    }
  }
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
