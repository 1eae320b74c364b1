#include "tests/testutil/random_layer.h"

#include <random>

#include "formats/model_layout.h"

namespace sp::test {

ModelConfig config_from_json(const std::string& json) { return *parse_model_config(json, "test config"); }

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

}  // namespace sp::test
