// bitsandbytes FP4 (bnb-fp4-int8-format.md Part A), golden values derived by hand from the
// spec: the code book is get_4bit_type("fp4") (the list divided by 12 in float32), the
// decision tree's thresholds send a value on a threshold to the smaller magnitude for both
// signs, a negative value that rounds to zero gets code 8, -0.0 and NaN code 0; the blocks,
// packing and spare nibble are NF4's (the spare encodes 0.0: code 0).
#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "ops/compress_shard.h"
#include "ops/nf4.h"

namespace sp {
namespace {

TEST(Fp4Golden, CodeBookIsTheListDividedByTwelve) {
  const float list[16] = {0, 0.0625f, 8, 12, 4, 6, 2, 3, 0, -0.0625f, -8, -12, -4, -6, -2, -3};
  for (int i = 0; i < 16; ++i) EXPECT_EQ(kFp4Code[i], list[i] / 12.0f) << i;
  EXPECT_FALSE(std::signbit(kFp4Code[8]));  // the list's -0 is the integer 0
  uint32_t bits;
  std::memcpy(&bits, &kFp4Code[1], 4);
  EXPECT_EQ(bits, 0x3baaaaabu);
  EXPECT_EQ(bnb4_code(BnbType::kFp4), kFp4Code);
}

TEST(Fp4Golden, DecisionTreeThresholds) {
  // (threshold literal, code just at it, code just above it): bits 0-2 of the magnitudes.
  const struct { float t; uint8_t at, above; } rows[] = {
      {0.00260417f, 0, 1}, {0.0859375f, 1, 6}, {0.20833333f, 6, 7}, {0.29166667f, 7, 4},
      {0.4166667f, 4, 5},  {0.583333f, 5, 2},  {0.8333333f, 2, 3},
  };
  for (const auto& r : rows) {
    const float up = std::nextafter(r.t, 2.0f);
    EXPECT_EQ(fp4_code_of(r.t), r.at) << r.t;
    EXPECT_EQ(fp4_code_of(up), r.above) << r.t;
    EXPECT_EQ(fp4_code_of(-r.t), r.at + 8) << r.t;
    EXPECT_EQ(fp4_code_of(-up), r.above + 8) << r.t;
  }
  EXPECT_EQ(fp4_code_of(1.0f), 3);
  EXPECT_EQ(fp4_code_of(-1.0f), 11);
  EXPECT_EQ(fp4_code_of(0.0f), 0);
  EXPECT_EQ(fp4_code_of(-0.0f), 0);
  EXPECT_EQ(fp4_code_of(-1e-6f), 8);
  EXPECT_EQ(fp4_code_of(std::numeric_limits<float>::quiet_NaN()), 0);
}

TEST(Fp4Golden, QuantizeAndDequantizeABlock) {
  // absmax 12: s = 1, -0.5, 0.0025, 0.25, -0.0000833 -> codes 3, 13, 0, 7, 8; the spare
  // nibble (a zero-padded sixth element) 0.
  const std::vector<float> x = {12.0f, -6.0f, 0.03f, 3.0f, -0.001f};
  std::vector<uint8_t> packed(3);
  std::vector<float> absmax(1);
  ASSERT_EQ(fp4_quantize_ref(x.data(), DType::kF32, x.size(), 64, packed.data(), absmax.data()), kAllFinite);
  EXPECT_EQ(packed, (std::vector<uint8_t>{0x3D, 0x07, 0x80}));
  EXPECT_EQ(absmax[0], 12.0f);
  std::vector<float> y(x.size());
  fp4_dequantize_ref(packed.data(), absmax.data(), x.size(), 64, y.data());
  EXPECT_EQ(y, (std::vector<float>{12.0f, -6.0f, 0.0f, 3.0f, 0.0f}));
  // An all-zero block: absmax 0, every code 0 (0 * inf is NaN).
  const std::vector<float> z(3, 0.0f);
  std::vector<uint8_t> zp(2, 0xff);
  ASSERT_EQ(fp4_quantize_ref(z.data(), DType::kF32, 3, 64, zp.data(), absmax.data()), kAllFinite);
  EXPECT_EQ(zp, (std::vector<uint8_t>{0x00, 0x00}));
  EXPECT_EQ(absmax[0], 0.0f);
  // NaN is refused with its position, as for NF4.
  const std::vector<float> bad = {1.0f, std::numeric_limits<float>::quiet_NaN()};
  EXPECT_EQ(fp4_quantize_ref(bad.data(), DType::kF32, 2, 64, zp.data(), absmax.data()), 1u);
}

// The bitsandbytes tensors of an FP4 weight: NF4's layout with FP4's quant_map and the
// __fp4 state blob; the packed bytes are FP4's reference codes.
TEST(Fp4Golden, OutputTensorsAreBitsandbytesFp4) {
  const ModelTensor meta{"m.q_proj.weight", TensorRole::kQProj, 0, TensorShape{DType::kF32, {2, 64}}};
  std::vector<float> w(128);
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(static_cast<float>(i) * 0.37f);
  const InputTensor in{&meta, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(w.data()), w.size() * 4)};
  CompressSettings s;
  s.quantize->quant_type = BnbType::kFp4;
  auto r = compress_shard(std::span<const InputTensor>(&in, 1), s);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& g = r->groups.at(0);
  ASSERT_EQ(g.back().spec.name, "m.q_proj.weight.quant_state.bitsandbytes__fp4");
  EXPECT_NE(std::string(g.back().data.begin(), g.back().data.end()).find(R"("quant_type": "fp4")"), std::string::npos);
  const auto& qm = g.at(2);
  ASSERT_EQ(qm.spec.name, "m.q_proj.weight.quant_map");
  EXPECT_EQ(std::memcmp(qm.data.data(), kFp4Code, sizeof kFp4Code), 0);
  std::vector<uint8_t> packed(64);
  std::vector<float> absmax(2);
  fp4_quantize_ref(w.data(), DType::kF32, w.size(), 64, packed.data(), absmax.data());
  EXPECT_EQ(g.at(0).data, packed);
  EXPECT_EQ(describe(s), "FP4 (block 64, double quant)");
}

}  // namespace
}  // namespace sp
