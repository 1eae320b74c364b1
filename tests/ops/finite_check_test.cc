// NaN and infinity are found in every float dtype, at any position, and named (issue 11:
// a NaN norm weight used to give a SUCCEEDED job, verify OK and perplexity nan; a NaN
// projection weight under GPTQ was reported as a bad "input").
#include "ops/finite_check.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "common/float_convert.h"
#include "common/half.h"
#include "formats/model.h"
#include "formats/token_ids.h"
#include "gtest/gtest.h"
#include "ops/calibrate_layer.h"
#include "ops/compress_shard.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

std::vector<uint8_t> encode(const std::vector<float>& v, DType dt) {
  std::vector<uint8_t> out(v.size() * dtype_size(dt));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dt == DType::kF32) std::memcpy(out.data() + 4 * i, &v[i], 4);
    if (dt == DType::kF64) {
      const double d = v[i];
      std::memcpy(out.data() + 8 * i, &d, 8);
    }
    const uint16_t h = dt == DType::kBF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
    if (dt == DType::kBF16 || dt == DType::kF16) std::memcpy(out.data() + 2 * i, &h, 2);
  }
  return out;
}

TEST(FiniteCheck, EveryFloatDtypeEveryPosition) {
  const float bad[] = {NAN, INFINITY, -INFINITY};
  for (DType dt : {DType::kF32, DType::kBF16, DType::kF16, DType::kF64})
    for (size_t n : {1u, 7u, 1024u, 1025u, 5000u})
      for (size_t at : {size_t{0}, n / 2, n - 1})
        for (float b : bad) {
          std::vector<float> v(n, 0.5f);
          v[n / 3] = 65000.0f;  // large but finite in every dtype
          if (at == n / 3 && n > 1) continue;
          v[at] = b;
          auto got = first_nonfinite(encode(v, dt), dt);
          ASSERT_TRUE(got) << dtype_name(dt) << " n=" << n << " at=" << at;
          EXPECT_EQ(*got, at) << dtype_name(dt);
        }
  std::vector<float> fine(3000, -1.0f);
  fine[17] = std::numeric_limits<float>::max();
  fine[18] = std::numeric_limits<float>::denorm_min();
  EXPECT_FALSE(first_nonfinite(encode(fine, DType::kF32), DType::kF32));
  const std::vector<uint8_t> codes(100, 0xff);  // integer tensors are always finite
  EXPECT_FALSE(first_nonfinite(codes, DType::kU8));
}

TEST(FiniteCheck, TheErrorNamesTensorElementRowAndColumn) {
  std::vector<float> v(12, 1.0f);
  v[7] = NAN;
  const std::vector<int64_t> shape{3, 4};
  auto st = check_finite("model.layers.0.mlp.up_proj.weight", encode(v, DType::kBF16), DType::kBF16, shape);
  ASSERT_TRUE(absl::IsInvalidArgument(st));
  EXPECT_EQ(std::string(st.message()).rfind("model.layers.0.mlp.up_proj.weight: element 7 (row 1, column 3) is nan", 0),
            0u)
      << st;
  v[7] = 1;
  v[2] = -INFINITY;
  const std::vector<int64_t> flat{12};
  auto inf = check_finite("model.norm.weight", encode(v, DType::kF32), DType::kF32, flat);
  EXPECT_EQ(std::string(inf.message()).rfind("model.norm.weight: element 2 is -inf", 0), 0u) << inf;
  EXPECT_TRUE(check_finite("x", encode(std::vector<float>(5, 2.0f), DType::kF16), DType::kF16, flat).ok());
}

// Poisons one tensor of a stories260k layer (bf16 bytes).
struct PoisonedLayer {
  Model model;
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<InputTensor> inputs;
};

PoisonedLayer poisoned(int64_t layer, const std::string& tensor, size_t element, float value) {
  auto m = open_model(test::fixture("stories260k/hf-bf16"));
  EXPECT_TRUE(m.ok());
  PoisonedLayer p{std::move(*m), {}, {}};
  const auto& names = p.model.desc.shards[static_cast<size_t>(layer + 1)].tensors;
  for (const auto& name : names) {
    auto v = p.model.files.find(name)->view().bytes;
    p.bytes.emplace_back(v.begin(), v.end());
    if (name == tensor) {
      const uint16_t h = f32_to_bf16(value);
      std::memcpy(p.bytes.back().data() + 2 * element, &h, 2);
    }
  }
  for (size_t i = 0; i < names.size(); ++i) p.inputs.push_back({p.model.desc.find(names[i]), p.bytes[i]});
  return p;
}

TEST(FiniteCheck, KeptTensorsOfAShardAreChecked) {
  for (const std::string t : {"model.layers.1.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight"}) {
    PoisonedLayer p = poisoned(1, t, 5, NAN);
    CompressSettings nf4;                             // the default: NF4
    CompressSettings prune_only{PruneSettings{PruneScope::kRow, 0.3}, std::nullopt};
    for (const CompressSettings& s : {nf4, prune_only}) {
      auto r = compress_shard(p.inputs, s);
      ASSERT_FALSE(r.ok()) << t;
      EXPECT_EQ(std::string(r.status().message()).rfind(t + ": element 5 is nan", 0), 0u) << r.status();
    }
  }
}

// GPTQ and the calibrated paths name the weight, not the activation it would poison.
TEST(FiniteCheck, CalibrationNamesTheWeightNotTheInput) {
  auto model = open_model(test::fixture("stories260k/hf-bf16"));
  ASSERT_TRUE(model.ok());
  const ModelConfig& c = model->desc.config;
  const auto ids = *read_token_ids(test::fixture("stories260k/text/calib.ids.txt"), c.vocab_size, 4, 32);
  const TensorRef* e = model->files.find("model.embed_tokens.weight");
  CompressSettings gptq;
  gptq.quant_method = QuantMethod::kGptq;
  CompressSettings wanda;
  wanda.prune = PruneSettings{PruneScope::kRow, 0.3, PruneMethod::kWanda};
  for (const std::string t : {"model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.v_proj.weight",
                              "model.layers.0.mlp.down_proj.weight", "model.layers.0.input_layernorm.weight"})
    for (const CompressSettings& s : {gptq, wanda}) {
      PoisonedLayer p = poisoned(0, t, 3, INFINITY);
      Activations acts = embed_calibration(c, to_float32(e->view().bytes, e->info->dtype), ids.ids.data(),
                                           ids.sequences, ids.seq_len);
      auto r = calibrate_layer(c, 0, p.inputs, acts, s, true);
      ASSERT_FALSE(r.ok()) << t;
      const std::string msg(r.status().message());
      EXPECT_EQ(msg.rfind(t + ": element 3", 0), 0u) << msg;
      EXPECT_EQ(msg.find("Hessian"), std::string::npos) << msg;
      EXPECT_EQ(msg.find("activations"), std::string::npos) << msg;
    }
}

}  // namespace
}  // namespace sp
