#include "tests/testutil/random_layer.h"

#include <random>

#include "common/half.h"
#include "formats/model_layout.h"
#include "ops/hessian.h"

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
