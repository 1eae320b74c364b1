#include "tests/testutil/random_layer.h"

#include <random>

#include "common/half.h"
#include "formats/model_layout.h"
#include "ops/hessian.h"

namespace sp::test {

ModelConfig config_from_json(const std::string& json) { return *parse_model_config(json, "test config"); }

ModelConfig tiny_llama_config() {
  return config_from_json(R"({"architectures":["LlamaForCausalLM"],"model_type":"llama",
    "hidden_size":32,"intermediate_size":48,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
    "vocab_size":64,"rms_norm_eps":1e-5,"rope_theta":500000.0,"tie_word_embeddings":true,
    "rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
                    "original_max_position_embeddings":16}})");
}

ModelConfig tiny_qwen2_config() {
  return config_from_json(R"({"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2",
    "hidden_size":32,"intermediate_size":40,"num_hidden_layers":3,"num_attention_heads":4,"num_key_value_heads":1,
    "vocab_size":64,"rms_norm_eps":1e-6,"rope_theta":1000000.0,"use_sliding_window":true,"sliding_window":5,
    "max_window_layers":1})");
}

ModelConfig tiny_exaone4_config() {
  return config_from_json(R"({"architectures":["Exaone4ForCausalLM"],"model_type":"exaone4",
    "hidden_size":32,"intermediate_size":48,"num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":2,
    "head_dim":8,"vocab_size":64,"rms_norm_eps":1e-5,"rope_theta":1000000.0,"sliding_window":6,
    "sliding_window_pattern":"LLLG",
    "rope_scaling":{"rope_type":"llama3","factor":16.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
                    "original_max_position_embeddings":8192}})");
}

LayerWeights random_layer(const ModelConfig& c, int64_t layer, uint32_t seed, float sd) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, sd);
  std::normal_distribution<float> norm(1.0f, 0.1f);
  LayerWeights w;
  for (const ExpectedTensor& e : expected_tensors(c)) {
    if (e.layer != layer || e.role == TensorRole::kRotaryInvFreq) continue;
    uint64_t n = 1;
    for (int64_t d : e.shape) n *= static_cast<uint64_t>(d);
    std::vector<float> v(n);
    const bool is_norm = e.shape.size() == 1 && !role_name(e.role).ends_with("bias");
    for (float& x : v) x = is_norm ? norm(rng) : nd(rng);
    w.tensors[e.role] = std::move(v);
  }
  return w;
}

std::vector<float> bf16_weights(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, 0.05f);
  std::vector<float> w(n);
  for (float& x : w) x = bf16_to_f32(f32_to_bf16(nd(rng)));
  return w;
}

std::vector<float> diagonal_hessian(int64_t c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> ud(0.5f, 3.0f);
  std::vector<float> h(static_cast<size_t>(c * c), 0.0f);
  for (int64_t j = 0; j < c; ++j) h[j * c + j] = ud(rng);
  return h;
}

std::vector<float> random_hessian(int64_t c, int64_t tokens, uint32_t seed, int64_t outlier) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> x(static_cast<size_t>(tokens * c));
  for (float& v : x) v = nd(rng);
  if (outlier >= 0)
    for (int64_t t = 0; t < tokens; ++t) x[t * c + outlier] *= 4.0f;
  HessianAccumulator acc(c);
  acc.add(x.data(), tokens);
  return *acc.hessian();
}

}  // namespace sp::test
