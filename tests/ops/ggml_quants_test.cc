// llama.cpp's types (ops/ggml_quants): every row of the table round-trips within its
// format's error, and the quantizers follow the reference's exact rules where they are
// easy to get wrong (Q8_0's half-away-from-zero rounding, Q4_0's signed scale and its
// float32 `x * id + 8.5` truncation). Byte-for-byte equality with llama-quantize itself is
// tested in tests/checkpoint/gguf_export_test.cc.
#include <cmath>
#include <cstring>
#include <random>

#include "common/half.h"
#include "gtest/gtest.h"
#include "ops/ggml_quants.h"

namespace sp {
namespace {

TEST(GgmlTypes, EveryRowRoundTripsWithinItsPrecision) {
  std::mt19937 rng(7);
  std::normal_distribution<float> n(0.0f, 0.02f);
  std::vector<float> x(256 * 3);
  for (auto& v : x) v = n(rng);
  x[5] = 0.3f;  // an outlier
  for (const auto& tr : ggml_types()) {
    const auto q = ggml_quantize(tr.type, x, 256);
    ASSERT_EQ(q.size(), ggml_nbytes(tr.type, static_cast<int64_t>(x.size()))) << tr.name;
    const auto y = ggml_dequantize(tr.type, q, static_cast<int64_t>(x.size()));
    double err = 0, ref = 0;
    for (size_t i = 0; i < x.size(); ++i) err += (x[i] - y[i]) * (x[i] - y[i]), ref += x[i] * x[i];
    const double rel = std::sqrt(err / ref);
    const double bound = tr.type == GgmlType::kF32 ? 0 : tr.block == 1 ? 0.01 : tr.type == GgmlType::kQ8_0 ? 0.02 : 0.3;
    EXPECT_LE(rel, bound) << tr.name;
    EXPECT_EQ(ggml_type_from_name(tr.name), tr.type);
  }
  EXPECT_EQ(ggml_type_from_name("q4_0"), GgmlType::kQ4_0);
  EXPECT_FALSE(ggml_type_from_name("Q4_9").has_value());
  EXPECT_THROW(ggml_quantize(GgmlType::kQ4_0, x, 100), std::invalid_argument);
}

TEST(GgmlTypes, ThreadsDoNotChangeTheBytes) {
  std::mt19937 rng(11);
  std::normal_distribution<float> n(0.0f, 0.05f);
  std::vector<float> x(64 * 7);  // 7 rows: uneven splits over 2, 3 and 16 threads
  for (auto& v : x) v = n(rng);
  for (const auto& tr : ggml_types()) {
    const auto one = ggml_quantize(tr.type, x, 64, 1);
    for (int threads : {2, 3, 16}) EXPECT_EQ(ggml_quantize(tr.type, x, 64, threads), one) << tr.name << " " << threads;
  }
}

TEST(GgmlTypes, ReferenceRoundingRules) {
  // Q8_0: amax 127 -> d = 1, qs = roundf(x): 2.5 -> 3, -2.5 -> -3 (half away from zero).
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f, x[1] = 2.5f, x[2] = -2.5f, x[3] = 0.5f;
  auto q8 = ggml_quantize(GgmlType::kQ8_0, x, 32);
  uint16_t d;
  std::memcpy(&d, q8.data(), 2);
  EXPECT_EQ(f16_to_f32(d), 1.0f);
  EXPECT_EQ(static_cast<int8_t>(q8[2 + 1]), 3);
  EXPECT_EQ(static_cast<int8_t>(q8[2 + 2]), -3);
  EXPECT_EQ(static_cast<int8_t>(q8[2 + 3]), 1);
  // Q4_0: the largest |x| keeps its sign in d = max / -8; x = max maps to code 0.
  std::vector<float> y(32, 0.0f);
  y[0] = -8.0f, y[16] = 4.0f, y[1] = 1.0f;
  auto q4 = ggml_quantize(GgmlType::kQ4_0, y, 32);
  std::memcpy(&d, q4.data(), 2);
  EXPECT_EQ(f16_to_f32(d), 1.0f);
  EXPECT_EQ(q4[2] & 0x0F, 0);          // -8 / 1 + 8.5 = 0.5 -> 0
  EXPECT_EQ(q4[2] >> 4, 12);           // 4 + 8.5 -> 12
  EXPECT_EQ(q4[3] & 0x0F, 9);          // 1 + 8.5 -> 9
  EXPECT_EQ(q4[4] & 0x0F, 8);          // 0 -> 8
  // All zero: d = 0 / -8 = -0.0 (fp16 0x8000, as llama.cpp writes it), every code 8.
  auto z = ggml_quantize(GgmlType::kQ4_0, std::vector<float>(32, 0.0f), 32);
  EXPECT_EQ(z[0], 0x00);
  EXPECT_EQ(z[1], 0x80);
  EXPECT_EQ(z[2], 0x88);
}

}  // namespace
}  // namespace sp
