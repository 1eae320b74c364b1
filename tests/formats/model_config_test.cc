// config.json parsing for Llama, Qwen2 and EXAONE 4.0, and the tensor layout check.
#include "formats/model_config.h"

#include <fstream>
#include <sstream>

#include "formats/model_files.h"
#include "formats/bnb_format.h"
#include "formats/model_layout.h"
#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

using json = nlohmann::json;

json exaone_32b_like() {
  return {{"architectures", {"Exaone4ForCausalLM"}}, {"model_type", "exaone4"}, {"hidden_size", 5120},
          {"intermediate_size", 27392}, {"num_hidden_layers", 8}, {"num_attention_heads", 40},
          {"num_key_value_heads", 8}, {"head_dim", 128}, {"vocab_size", 102400},
          {"tie_word_embeddings", false}, {"rms_norm_eps", 1e-5}, {"rope_theta", 1000000.0},
          {"rope_scaling", {{"rope_type", "llama3"}, {"factor", 16.0}, {"low_freq_factor", 1.0},
                            {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}}},
          {"sliding_window", 4096}, {"sliding_window_pattern", 4}, {"torch_dtype", "bfloat16"}};
}

absl::StatusOr<ModelConfig> parse(const json& j) { return parse_model_config(j.dump(), "cfg.json"); }

std::string error_of(const json& j) {
  auto c = parse(j);
  return c.ok() ? "" : std::string(c.status().message());
}

TEST(ModelConfig, StoriesLlama) {
  auto c = load_model_config(test::fixture("stories260k/hf-bf16"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->arch, Arch::kLlama);
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->intermediate_size, 172);
  EXPECT_EQ(c->num_layers, 5);
  EXPECT_EQ(c->num_heads, 8);
  EXPECT_EQ(c->num_kv_heads, 4);
  EXPECT_EQ(c->head_dim, 8);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->torch_dtype, DType::kBF16);
  EXPECT_EQ(c->layer_types.size(), 5u);
}

TEST(ModelConfig, ExaoneSlidingPatternIntStringAndList) {
  auto c = parse(exaone_32b_like());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->arch, Arch::kExaone4);
  const std::vector<AttentionKind> lllg = {AttentionKind::kSliding, AttentionKind::kSliding, AttentionKind::kSliding,
                                           AttentionKind::kFull,    AttentionKind::kSliding, AttentionKind::kSliding,
                                           AttentionKind::kSliding, AttentionKind::kFull};
  EXPECT_EQ(c->layer_types, lllg);
  EXPECT_EQ(c->rope_scaling["rope_type"], "llama3");
  json s = exaone_32b_like();
  s["sliding_window_pattern"] = "LLLG";
  EXPECT_EQ(parse(s)->layer_types, lllg);
  json l = exaone_32b_like();
  l.erase("sliding_window_pattern");
  l["layer_types"] = json::array();
  for (auto k : lllg) l["layer_types"].push_back(k == AttentionKind::kFull ? "full_attention" : "sliding_attention");
  EXPECT_EQ(parse(l)->layer_types, lllg);
  json none = exaone_32b_like();
  none["sliding_window"] = nullptr;
  EXPECT_EQ(parse(none)->layer_types, std::vector<AttentionKind>(8, AttentionKind::kFull));
}

TEST(ModelConfig, Qwen2SlidingFromMaxWindowLayers) {
  json q = {{"architectures", {"Qwen2ForCausalLM"}}, {"hidden_size", 64}, {"intermediate_size", 128},
            {"num_hidden_layers", 4}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
            {"vocab_size", 100}, {"use_sliding_window", true}, {"max_window_layers", 2}, {"sliding_window", 32}};
  auto c = parse(q);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->layer_types, (std::vector<AttentionKind>{AttentionKind::kFull, AttentionKind::kFull,
                                                        AttentionKind::kSliding, AttentionKind::kSliding}));
}

TEST(ModelConfig, ClearErrors) {
  json bad = exaone_32b_like();
  bad["architectures"] = {"GPT2LMHeadModel"};
  bad["model_type"] = "gpt2";
  const std::string e = error_of(bad);
  EXPECT_NE(e.find("unsupported architecture 'GPT2LMHeadModel'"), std::string::npos) << e;
  EXPECT_NE(e.find("LlamaForCausalLM (llama), Qwen2ForCausalLM (qwen2), Exaone4ForCausalLM (exaone4)"),
            std::string::npos) << e;

  json missing = exaone_32b_like();
  missing.erase("hidden_size");
  EXPECT_EQ(error_of(missing), "cfg.json: missing key 'hidden_size'");

  json quantized = exaone_32b_like();
  quantized["quantization_config"] = {{"quant_method", "bitsandbytes"}};
  EXPECT_NE(error_of(quantized).find("already quantized"), std::string::npos);

  json gqa = exaone_32b_like();
  gqa["num_key_value_heads"] = 7;
  EXPECT_NE(error_of(gqa).find("not a multiple of num_key_value_heads 7"), std::string::npos);

  json neg = exaone_32b_like();
  neg["num_hidden_layers"] = -3;
  EXPECT_NE(error_of(neg).find("'num_hidden_layers' must be a positive integer, got -3"), std::string::npos);

  json lt = exaone_32b_like();
  lt["layer_types"] = {"full_attention"};
  EXPECT_NE(error_of(lt).find("one entry per layer (8)"), std::string::npos);

  EXPECT_NE(std::string(parse_model_config("{not json", "x.json").status().message()).find("x.json: not valid JSON"),
            std::string::npos);
  EXPECT_FALSE(parse_model_config(R"({"hidden_size": 1e99999})", "x.json").ok());  // number overflow
  EXPECT_FALSE(parse_safetensors_index(R"({"weight_map": {"a": 1e99999}})", "i.json").ok());
  EXPECT_FALSE(parse_quant_state_json(R"({"quant_type": "nf4", "blocksize": 1e99999})").ok());
}

// Issue 11: sizes in config.json are bounded before anything proportional to them is
// built; the error names the key.
TEST(ModelConfig, SizesBeyondAnyModelAreRefusedNamingTheKey) {
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, json>>{{"num_hidden_layers", 10'000'000},
                                                  {"num_hidden_layers", 1'000'000'000'000},
                                                  {"num_hidden_layers", json(18446744073709551615ull)},
                                                  {"hidden_size", 1ll << 40},
                                                  {"intermediate_size", 1ll << 33},
                                                  {"vocab_size", 1'000'000'000'000},
                                                  {"num_attention_heads", 1 << 20},
                                                  {"num_key_value_heads", 1 << 20},
                                                  {"head_dim", 1 << 20},
                                                  {"sliding_window", json(9223372036854775807ll)}}) {
    json j = exaone_32b_like();
    j[key] = value;
    const std::string e = error_of(j);
    EXPECT_NE(e.find("'" + key + "'"), std::string::npos) << key << " = " << value.dump() << ": " << e;
  }
  json kv = exaone_32b_like();
  kv["num_key_value_heads"] = 80;
  EXPECT_NE(error_of(kv).find("num_key_value_heads 80 is more than num_attention_heads 40"), std::string::npos);
  json big_but_real = exaone_32b_like();
  big_but_real["num_hidden_layers"] = 4096;
  EXPECT_TRUE(parse(big_but_real).ok());
}

std::map<std::string, TensorShape> shapes_of(const ModelConfig& c, DType dt = DType::kBF16) {
  std::map<std::string, TensorShape> m;
  for (const auto& e : expected_tensors(c))
    if (!e.optional) m[e.name] = {dt, e.shape};
  return m;
}

TEST(ModelLayout, StoriesRolesAndShards) {
  auto c = load_model_config(test::fixture("stories260k/hf-bf16"));
  auto files = ModelFiles::open(test::fixture("stories260k/hf-bf16"));
  ASSERT_TRUE(files.ok());
  std::map<std::string, TensorShape> actual;
  for (const auto& [n, r] : files->tensors()) actual[n] = {r.info->dtype, r.info->shape};
  auto d = describe_model(*c, actual, "stories");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->params, 260032u);
  ASSERT_EQ(d->shards.size(), 7u);  // embed, 5 layers, norm (tied: no lm_head)
  EXPECT_EQ(d->shards[0].id, "embed");
  EXPECT_EQ(d->shards[1].id, "layer.0");
  EXPECT_EQ(d->shards[1].tensors.size(), 9u);
  EXPECT_EQ(d->shards[6].id, "norm");
  EXPECT_EQ(d->find("model.layers.2.mlp.down_proj.weight")->role, TensorRole::kDownProj);
  EXPECT_EQ(d->find("model.layers.2.mlp.down_proj.weight")->layer, 2);
  EXPECT_EQ(d->find("model.layers.4.input_layernorm.weight")->role, TensorRole::kInputNorm);
  uint64_t linear = 0;
  for (const auto& s : d->shards) linear += s.linear_params;
  EXPECT_EQ(linear, 5u * (64 * 64 * 2 + 32 * 64 * 2 + 172 * 64 * 3));
}

TEST(ModelLayout, ExaoneHasQkNormsPostNormsAndNoInputNorm) {
  auto c = parse(exaone_32b_like());
  ASSERT_TRUE(c.ok());
  auto d = describe_model(*c, shapes_of(*c), "exaone");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->find("model.layers.0.self_attn.q_norm.weight")->stored.shape, (std::vector<int64_t>{128}));
  EXPECT_NE(d->find("model.layers.0.post_feedforward_layernorm.weight"), nullptr);
  EXPECT_EQ(d->find("model.layers.0.input_layernorm.weight"), nullptr);
  EXPECT_EQ(d->find("model.layers.7.mlp.down_proj.weight")->stored.shape, (std::vector<int64_t>{5120, 27392}));
  EXPECT_EQ(d->shards.back().id, "lm_head");
  // architectures.md §7: 483,666,176 parameters per EXAONE-32B layer.
  EXPECT_EQ(d->shards[1].params, 483666176u);
}

TEST(ModelLayout, Qwen2HasQkvBiases) {
  json q = {{"architectures", {"Qwen2ForCausalLM"}}, {"hidden_size", 64}, {"intermediate_size", 128},
            {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"vocab_size", 100}};
  auto c = parse(q);
  auto d = describe_model(*c, shapes_of(*c), "qwen");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->find("model.layers.1.self_attn.k_proj.bias")->stored.shape, (std::vector<int64_t>{32}));
  EXPECT_EQ(d->find("model.layers.1.self_attn.o_proj.bias"), nullptr);
  EXPECT_FALSE(is_linear_weight(d->find("model.layers.1.self_attn.k_proj.bias")->role));
}

TEST(ModelLayout, MissingMisshapenAndUnexpectedTensorsAreListed) {
  auto c = parse(exaone_32b_like());
  auto shapes = shapes_of(*c);
  shapes.erase("model.layers.3.mlp.up_proj.weight");
  shapes["model.layers.0.self_attn.k_proj.weight"].shape = {512, 5120};
  shapes["model.layers.0.self_attn.extra.weight"] = {DType::kBF16, {4}};
  shapes["model.layers.0.mlp.gate_proj.weight"].dtype = DType::kI8;
  shapes["model.layers.0.self_attn.rotary_emb.inv_freq"] = {DType::kF32, {64}};
  auto d = describe_model(*c, shapes, "m");
  ASSERT_FALSE(d.ok());
  const std::string e(d.status().message());
  EXPECT_NE(e.find("4 problems"), std::string::npos) << e;
  EXPECT_NE(e.find("missing tensor 'model.layers.3.mlp.up_proj.weight' (expected shape [27392, 5120])"),
            std::string::npos) << e;
  EXPECT_NE(e.find("tensor 'model.layers.0.self_attn.k_proj.weight' has shape [512, 5120], expected [1024, 5120]"),
            std::string::npos) << e;
  EXPECT_NE(e.find("unexpected tensor 'model.layers.0.self_attn.extra.weight' for Exaone4ForCausalLM"),
            std::string::npos) << e;
  EXPECT_NE(e.find("is I8, expected F32, F16 or BF16"), std::string::npos) << e;
  EXPECT_NE(e.find("a Exaone4ForCausalLM layer has: self_attn.q_proj.weight"), std::string::npos) << e;
}

// More layers in config.json than in the weights: refused before the expected tensors
// of every claimed layer are listed (10^7 layers would be ~2 * 10^8 names).
TEST(ModelLayout, MoreLayersThanTheFilesHoldIsRefusedFirst) {
  json j = exaone_32b_like();
  auto small = parse(j);
  ASSERT_TRUE(small.ok());
  const auto held = shapes_of(*small);  // 8 layers
  j["num_hidden_layers"] = 4096;
  auto claimed = parse(j);
  ASSERT_TRUE(claimed.ok());
  auto d = describe_model(*claimed, held, "m");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(std::string(d.status().message()),
            "m: config.json says num_hidden_layers is 4096, but the weights hold 8 decoder layers");
  std::map<std::string, TensorShape> odd = held;
  odd["model.layers.99999999999999999999999.x"] = {DType::kBF16, {1}};  // not a layer index: not counted
  odd["model.layers.x.y"] = {DType::kBF16, {1}};
  EXPECT_FALSE(describe_model(*claimed, odd, "m").ok());
}

TEST(ModelLayout, TiedModelMayCarryLmHeadUntiedMustHaveIt) {
  auto c = load_model_config(test::fixture("stories260k/hf-bf16"));
  auto shapes = shapes_of(*c);
  EXPECT_TRUE(describe_model(*c, shapes, "m").ok());
  shapes["lm_head.weight"] = {DType::kBF16, {512, 64}};
  auto d = describe_model(*c, shapes, "m");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->shards.back().id, "lm_head");
  auto ex = parse(exaone_32b_like());
  auto s2 = shapes_of(*ex);
  s2.erase("lm_head.weight");
  auto d2 = describe_model(*ex, s2, "m");
  ASSERT_FALSE(d2.ok());
  EXPECT_NE(std::string(d2.status().message()).find("missing tensor 'lm_head.weight'"), std::string::npos);
}

TEST(ModelLayout, OnlyProjectionWeightsAreLinear) {
  for (auto r : {TensorRole::kQProj, TensorRole::kKProj, TensorRole::kVProj, TensorRole::kOProj,
                 TensorRole::kGateProj, TensorRole::kUpProj, TensorRole::kDownProj})
    EXPECT_TRUE(is_linear_weight(r));
  for (auto r : {TensorRole::kEmbedding, TensorRole::kLmHead, TensorRole::kFinalNorm, TensorRole::kInputNorm,
                 TensorRole::kQNorm, TensorRole::kQBias, TensorRole::kPostFeedforwardNorm})
    EXPECT_FALSE(is_linear_weight(r));
}

}  // namespace
}  // namespace sp
