// Every NF4 backend against the scalar reference on many shapes, dtypes and block sizes
// (bit-exact: the op is exact), plus edge cases: zero blocks, partial blocks, odd
// lengths, saturation, NaN/Inf rejection.
#include <cmath>
#include <cstring>
#include <random>

#include "common/half.h"
#include "gtest/gtest.h"
#include "ops/nf4.h"

namespace sp {
namespace {

std::vector<uint8_t> make_input(DType dt, size_t n, uint32_t seed, bool zero_block = false) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<uint8_t> b(n * dtype_size(dt));
  for (size_t i = 0; i < n; ++i) {
    float x = nd(rng);
    if (i % 97 == 5) x *= 40.0f;                 // outliers
    if (zero_block && i >= 64 && i < 128) x = 0;  // an all-zero block (bs 64)
    if (dt == DType::kF32) {
      std::memcpy(b.data() + 4 * i, &x, 4);
    } else {
      const uint16_t h = dt == DType::kBF16 ? f32_to_bf16(x) : f32_to_f16(x);
      std::memcpy(b.data() + 2 * i, &h, 2);
    }
  }
  return b;
}

std::vector<const Nf4Backend*> vector_backends() {
  std::vector<const Nf4Backend*> out;
  for (const auto& b : nf4_backends())
    if (&b != &nf4_reference_backend() && b.available()) out.push_back(&b);
  return out;
}

struct Shape {
  int64_t rows, cols;
};

TEST(Nf4Backends, BitExactWithReferenceAcrossShapesDtypesBlockSizes) {
  const auto backends = vector_backends();
  if (backends.empty()) GTEST_SKIP() << "no vector backend on this CPU";
  const Shape shapes[] = {{1, 1}, {1, 2}, {1, 15}, {1, 16}, {1, 17}, {3, 77}, {7, 64}, {5, 100},
                          {64, 172}, {172, 64}, {2, 27392}, {1, 4097}, {33, 31}};
  uint32_t seed = 1;
  for (const auto* be : backends) {
    for (DType dt : {DType::kBF16, DType::kF16, DType::kF32}) {
      for (int bs : kNf4BlockSizes) {
        for (const auto& s : shapes) {
          const size_t n = static_cast<size_t>(s.rows * s.cols);
          const auto in = make_input(dt, n, seed++, true);
          auto want = nf4_quantize(in, dt, s.rows, s.cols, bs, nf4_reference_backend());
          auto got = nf4_quantize(in, dt, s.rows, s.cols, bs, *be);
          ASSERT_TRUE(want.ok() && got.ok());
          ASSERT_EQ(got->packed, want->packed) << be->name << " " << dtype_name(dt) << " bs " << bs << " "
                                               << s.rows << "x" << s.cols;
          ASSERT_EQ(0, std::memcmp(got->absmax.data(), want->absmax.data(), want->absmax.size() * 4));
          std::vector<float> d1(n), d2(n);
          nf4_reference_backend().dequantize(want->packed.data(), want->absmax.data(), n, bs, d1.data());
          be->dequantize(want->packed.data(), want->absmax.data(), n, bs, d2.data());
          ASSERT_EQ(0, std::memcmp(d1.data(), d2.data(), n * 4)) << be->name << " dequantize";
          std::vector<uint16_t> h1(n), h2(n);
          nf4_reference_backend().dequantize_bf16(want->packed.data(), want->absmax.data(), n, bs, h1.data());
          be->dequantize_bf16(want->packed.data(), want->absmax.data(), n, bs, h2.data());
          ASSERT_EQ(h1, h2) << be->name << " dequantize_bf16";
        }
      }
    }
  }
}

TEST(Nf4Reference, ZeroBlockGivesCodeZeroAndDecodesToZero) {
  std::vector<float> x(128, 0.0f);
  x[100] = 0.5f;  // second block non-zero
  auto q = nf4_quantize({reinterpret_cast<const uint8_t*>(x.data()), x.size() * 4}, DType::kF32, 1, 128, 64);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->absmax[0], 0.0f);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(q->packed[i], 0x00) << i;  // CUDA: 0 * inf = NaN -> code 0
  EXPECT_EQ(q->absmax[1], 0.5f);
  EXPECT_EQ(q->packed[50], 0xf7);  // elements 100 (1.0 -> 15) and 101 (0 -> 7)
  std::vector<float> d(128);
  nf4_reference_backend().dequantize(q->packed.data(), q->absmax.data(), 128, 64, d.data());
  for (int i = 0; i < 64; ++i) EXPECT_EQ(d[i], 0.0f);
}

TEST(Nf4Reference, OddLengthPadsLowNibbleWithCodeOfZero) {
  const float x[3] = {1.0f, -1.0f, 0.25f};
  auto q = nf4_quantize({reinterpret_cast<const uint8_t*>(x), sizeof x}, DType::kF32, 1, 3, 64);
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->packed.size(), 2u);
  EXPECT_EQ(q->packed[0], 0xf0);
  EXPECT_EQ(q->packed[1], (10 << 4) | 7);  // 0.25 -> level 0.2461 (code 10); pad 0 -> 7
}

TEST(Nf4Reference, NearestLevelTiesGoLow) {
  // With absmax 1 the scaled value is x itself.
  EXPECT_EQ(nf4_code_of(kNf4Threshold[7]), 7);  // exactly on the midpoint: lower code
  EXPECT_EQ(nf4_code_of(std::nextafter(kNf4Threshold[7], 1.0f)), 8);
  EXPECT_EQ(nf4_code_of(-1.0f), 0);
  EXPECT_EQ(nf4_code_of(1.0f), 15);
  EXPECT_EQ(nf4_code_of(0.0f), 7);
  EXPECT_EQ(nf4_code_of(NAN), 0);
}

TEST(Nf4Backends, NanAndInfAreErrorsNamingTheElement) {
  for (const auto& be : nf4_backends()) {
    if (!be.available()) continue;
    for (float bad : {NAN, INFINITY, -INFINITY}) {
      std::vector<float> x(300, 0.1f);
      x[259] = bad;
      auto q = nf4_quantize({reinterpret_cast<const uint8_t*>(x.data()), x.size() * 4}, DType::kF32, 3, 100, 64, be);
      ASSERT_FALSE(q.ok()) << be.name;
      EXPECT_TRUE(absl::IsInvalidArgument(q.status()));
      EXPECT_NE(std::string(q.status().message()).find("element 259 (row 2, column 59)"), std::string::npos)
          << be.name << ": " << q.status();
    }
    std::vector<uint16_t> h(128, f32_to_bf16(0.5f));
    h[70] = 0x7fc0;  // bf16 NaN
    auto q = nf4_quantize({reinterpret_cast<const uint8_t*>(h.data()), h.size() * 2}, DType::kBF16, 1, 128, 64, be);
    ASSERT_FALSE(q.ok());
    EXPECT_NE(std::string(q.status().message()).find("element 70"), std::string::npos);
  }
}

TEST(Nf4, RejectsBadArguments) {
  std::vector<float> x(64, 1.0f);
  std::span<const uint8_t> b(reinterpret_cast<const uint8_t*>(x.data()), 256);
  EXPECT_NE(std::string(nf4_quantize(b, DType::kF32, 1, 64, 48).status().message()).find("block size 48"),
            std::string::npos);
  EXPECT_NE(std::string(nf4_quantize(b, DType::kI32, 1, 64, 64).status().message()).find("I32 cannot be quantized"),
            std::string::npos);
  EXPECT_FALSE(nf4_quantize(b, DType::kF32, 2, 64, 64).ok());  // wrong byte count
}

TEST(Nf4, DequantErrorIsBoundedByHalfTheWidestGap) {
  // Every element decodes within half the widest code gap (0.1519 of absmax).
  const auto in = make_input(DType::kF32, 64 * 100, 7);
  auto q = nf4_quantize(in, DType::kF32, 64, 100, 64);
  ASSERT_TRUE(q.ok());
  std::vector<float> d(6400);
  nf4_best_backend().dequantize(q->packed.data(), q->absmax.data(), 6400, 64, d.data());
  const float* x = reinterpret_cast<const float*>(in.data());
  const float half_gap = (kNf4Code[1] - kNf4Code[0]) / 2;
  for (size_t i = 0; i < 6400; ++i)
    ASSERT_LE(std::fabs(d[i] - x[i]), half_gap * q->absmax[i / 64] * 1.000001f) << i;
}

}  // namespace
}  // namespace sp
