// The per-shard task: only projection weights are pruned/quantized, everything else
// passes through byte for byte; errors name the tensor.
#include "ops/compress_shard.h"

#include <cmath>
#include <cstring>
#include <random>

#include "common/half.h"
#include "gtest/gtest.h"
#include "ops/double_quant.h"

namespace sp {
namespace {

struct Layer {
  std::vector<ModelTensor> meta;
  std::vector<std::vector<uint8_t>> data;
  std::vector<InputTensor> inputs() const {
    std::vector<InputTensor> in;
    for (size_t i = 0; i < meta.size(); ++i) in.push_back({&meta[i], data[i]});
    return in;
  }
};

Layer make_layer() {
  Layer l;
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0, 0.05f);
  auto add = [&](std::string name, TensorRole role, std::vector<int64_t> shape) {
    ModelTensor t{std::move(name), role, 0, {DType::kBF16, shape}};
    std::vector<uint8_t> b(t.stored.nbytes());
    for (size_t i = 0; i < t.stored.numel(); ++i) {
      const uint16_t h = f32_to_bf16(nd(rng));
      std::memcpy(b.data() + 2 * i, &h, 2);
    }
    l.meta.push_back(std::move(t));
    l.data.push_back(std::move(b));
  };
  add("model.layers.0.input_layernorm.weight", TensorRole::kInputNorm, {64});
  add("model.layers.0.self_attn.q_proj.weight", TensorRole::kQProj, {64, 64});
  add("model.layers.0.self_attn.q_proj.bias", TensorRole::kQBias, {64});
  add("model.layers.0.mlp.down_proj.weight", TensorRole::kDownProj, {64, 172});
  return l;
}

TEST(CompressShard, QuantizesProjectionsOnlyAndKeepsOthersByteForByte) {
  const Layer l = make_layer();
  CompressSettings s;
  s.prune = PruneSettings{PruneScope::kRow, 0.5};
  auto r = compress_shard(l.inputs(), s);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->groups.size(), 4u);
  // norm and bias: one tensor each, unchanged
  EXPECT_EQ(r->groups[0].size(), 1u);
  EXPECT_EQ(r->groups[0][0].data, l.data[0]);
  EXPECT_EQ(r->groups[0][0].spec.dtype, DType::kBF16);
  EXPECT_EQ(r->groups[2][0].data, l.data[2]);
  EXPECT_FALSE(r->reports[0].prune.has_value());
  EXPECT_FALSE(r->reports[2].quantized);
  // q_proj: the 6 bitsandbytes tensors
  const auto& q = r->groups[1];
  ASSERT_EQ(q.size(), 6u);
  EXPECT_EQ(q[0].spec.name, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(q[0].data.size(), 64u * 64 / 2);
  EXPECT_EQ(q[5].spec.name, "model.layers.0.self_attn.q_proj.weight.quant_state.bitsandbytes__nf4");
  const std::string json(q[5].data.begin(), q[5].data.end());
  EXPECT_NE(json.find(R"("dtype": "bfloat16", "shape": [64, 64])"), std::string::npos) << json;
  ASSERT_TRUE(r->reports[1].prune.has_value());
  EXPECT_EQ(r->reports[1].prune->pruned, 64u * 32);
  EXPECT_TRUE(r->reports[1].quantized);
  // Pruned weights decode to exactly zero (NF4 code 7 is 0.0): count zero nibbles >= pruned.
  size_t zero_codes = 0;
  for (uint8_t b : q[0].data) zero_codes += ((b >> 4) == 7) + ((b & 15) == 7);
  EXPECT_GE(zero_codes, 64u * 32);
}

TEST(CompressShard, PruneOnlyWritesPrunedWeightsInTheirDtype) {
  const Layer l = make_layer();
  CompressSettings s;
  s.prune = PruneSettings{PruneScope::kTwoFour, 0.5};
  s.quantize.reset();
  auto r = compress_shard(l.inputs(), s);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& down = r->groups[3][0];
  EXPECT_EQ(down.spec.dtype, DType::kBF16);
  EXPECT_EQ(down.spec.shape, (std::vector<int64_t>{64, 172}));
  size_t z = 0, changed_kept = 0;
  for (size_t i = 0; i < 64 * 172; ++i) {
    uint16_t a, b;
    std::memcpy(&a, down.data.data() + 2 * i, 2);
    std::memcpy(&b, l.data[3].data() + 2 * i, 2);
    if (bf16_to_f32(a) == 0) ++z;
    else changed_kept += a != b;
  }
  EXPECT_EQ(z, 64u * 172 / 2);
  EXPECT_EQ(changed_kept, 0u);
}

TEST(CompressShard, NanIsAnErrorNamingTensorAndElement) {
  Layer l = make_layer();
  const uint16_t nan = 0x7fc0;
  std::memcpy(l.data[3].data() + 2 * 200, &nan, 2);
  auto r = compress_shard(l.inputs(), CompressSettings{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message())
                .find("model.layers.0.mlp.down_proj.weight: element 200 (row 1, column 28) is nan"),
            std::string::npos)
      << r.status();
}

TEST(CompressShard, RejectsBadSettings) {
  const Layer l = make_layer();
  CompressSettings s;
  s.quantize->blocksize = 100;
  EXPECT_NE(std::string(compress_shard(l.inputs(), s).status().message()).find("'quantize.blocksize' is 100"),
            std::string::npos);
  CompressSettings p;
  p.prune = PruneSettings{PruneScope::kTensor, 1.5};
  EXPECT_FALSE(compress_shard(l.inputs(), p).ok());
}

}  // namespace
}  // namespace sp
