// Synthetic inputs for tests and benchmarks: a config from JSON text, a layer's float32
// tensors drawn at random (projections N(0, sd), norms N(1, 0.1)), and the weights and
// Hessians GPTQ tests start from.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/model_config.h"
#include "ops/decoder_layer.h"

namespace sp::test {

ModelConfig config_from_json(const std::string& json);
// Tiny models of each family with what makes it differ: Llama with llama3 RoPE scaling;
// Qwen2 with biases, one KV head and sliding-window layers; EXAONE 4 with hybrid
// sliding/global (NoPE) layers, QK-norm and post-norms.
ModelConfig tiny_llama_config();
ModelConfig tiny_qwen2_config();
ModelConfig tiny_exaone4_config();
LayerWeights random_layer(const ModelConfig& c, int64_t layer, uint32_t seed, float sd = 0.2f);

// n weights N(0, 0.05) rounded to bf16 (as a checkpoint stores them).
std::vector<float> bf16_weights(size_t n, uint32_t seed);
// A diagonal Hessian [c, c] with entries uniform in [0.5, 3].
std::vector<float> diagonal_hessian(int64_t c, uint32_t seed);
// The Hessian of `tokens` N(0, 1) inputs; `outlier` >= 0 scales that channel by 4.
std::vector<float> random_hessian(int64_t c, int64_t tokens, uint32_t seed, int64_t outlier = -1);

}  // namespace sp::test
