// LLM.int8 weights (bnb-fp4-int8-format.md B.1), golden values derived by hand from the
// spec: float16 first, SCB = the row's largest |value|, codes round half to even of
// value × (127 / SCB), an all-zero row 0; decoded as code × SCB × (1/127). GPTQ on the
// int8 row grid with a diagonal Hessian has nothing to compensate: round to nearest.
#include <cstring>
#include <vector>

#include "common/half.h"
#include "gtest/gtest.h"
#include "ops/compress_shard.h"
#include "ops/int8_rows.h"
#include "ops/obs_compress.h"

namespace sp {
namespace {

std::span<const uint8_t> bytes_of(const std::vector<float>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)};
}

TEST(Int8Golden, RowsCodesAndTies) {
  // Row 0: SCB 1, 127/1 = 127: 1 -> 127, -0.5 -> -63.5 -> -64 (half to even), 0.5 -> 64,
  // 0.25 -> 31.75 -> 32. Row 1: SCB 2, 127/2 = 63.5: 1 -> 63.5 -> 64, 0.1 -> float16
  // 0.0999755859375 -> 6.348... -> 6, -2 -> -127. Row 2: zeros.
  const std::vector<float> w = {1.0f, -0.5f, 0.5f, 0.25f, 2.0f, 1.0f, 0.1f, -2.0f, 0, 0, 0, 0};
  auto q = int8_quantize(bytes_of(w), DType::kF32, 3, 4);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->scb, (std::vector<float>{1.0f, 2.0f, 0.0f}));
  EXPECT_EQ(q->codes, (std::vector<int8_t>{127, -64, 64, 32, 127, 64, 6, -127, 0, 0, 0, 0}));
  const auto y = int8_dequantize(q->codes, q->scb, 4);
  EXPECT_EQ(y[1], -64.0f * 1.0f * 7.874015718698502e-3f);
  EXPECT_EQ(y[5], 64.0f * 2.0f * 7.874015718698502e-3f);
  EXPECT_EQ(y[8], 0.0f);
  // The scale is the float16 weight's: 65519 rounds to 65504 in float16.
  const std::vector<float> big = {65519.0f, 1.0f};
  auto b = int8_quantize(bytes_of(big), DType::kF32, 1, 2);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->scb[0], 65504.0f);
  // A NaN is refused naming the element.
  const std::vector<float> bad = {1.0f, std::nanf("")};
  EXPECT_NE(int8_quantize(bytes_of(bad), DType::kF32, 1, 2).status().message().find("element 1 (row 0, column 1)"),
            std::string::npos);
}

TEST(Int8Golden, OutputTensorsAreLinear8bitLt) {
  const ModelTensor meta{"m.layers.0.mlp.up_proj.weight", TensorRole::kUpProj, 0, TensorShape{DType::kF32, {3, 4}}};
  const std::vector<float> w = {1.0f, -0.5f, 0.5f, 0.25f, 2.0f, 1.0f, 0.1f, -2.0f, 0, 0, 0, 0};
  const InputTensor in{&meta, bytes_of(w)};
  CompressSettings s;
  s.quantize->quant_type = BnbType::kInt8;
  auto r = compress_shard(std::span<const InputTensor>(&in, 1), s);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& g = r->groups.at(0);
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(g[0].spec.name, "m.layers.0.mlp.up_proj.weight");
  EXPECT_EQ(g[0].spec.dtype, DType::kI8);
  EXPECT_EQ(g[0].data, (std::vector<uint8_t>{127, 0xC0, 64, 32, 127, 64, 6, 0x81, 0, 0, 0, 0}));
  EXPECT_EQ(g[1].spec.name, "m.layers.0.mlp.up_proj.SCB");
  EXPECT_EQ(g[1].spec.shape, std::vector<int64_t>{3});
  EXPECT_EQ(g[2].spec.name, "m.layers.0.mlp.up_proj.weight_format");
  EXPECT_TRUE(g[2].spec.shape.empty());
  EXPECT_EQ(g[2].data, std::vector<uint8_t>{0});
  EXPECT_EQ(output_specs(meta, s).size(), 3u);
  EXPECT_EQ(describe(s), "int8 (LLM.int8, row-wise)");
}

TEST(Int8Golden, GptqWithADiagonalHessianIsRoundToNearest) {
  const int64_t rows = 5, cols = 48;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(static_cast<float>(i) * 0.731f) * (1.0f + (i % 7));
  auto rtn = int8_quantize(bytes_of(w), DType::kF32, rows, cols);
  ASSERT_TRUE(rtn.ok());
  for (bool act_order : {false, true}) {
    Int8RowGrid grid(rtn->scb, rows, cols);
    ObsSettings s;
    s.quantize = false;
    s.grid = &grid;
    s.act_order = act_order;
    std::vector<float> h(static_cast<size_t>(cols * cols), 0.0f);
    for (int64_t j = 0; j < cols; ++j) h[j * cols + j] = 1.0f + static_cast<float>(j % 5);
    auto r = obs_compress(w, rows, cols, h, s);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(grid.take().codes, rtn->codes) << "act_order " << act_order;
    EXPECT_EQ(r->weight, int8_dequantize(rtn->codes, rtn->scb, cols));
  }
}

}  // namespace
}  // namespace sp
