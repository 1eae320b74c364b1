// The forward pass of one decoder layer of Llama, Qwen2 or EXAONE 4.0 in float32
// (architectures.md §2-§4): RMSNorm placement per family, QK-norm, RoPE (or none on
// EXAONE's global layers), causal and sliding-window GQA attention, SwiGLU. Weights are
// held in float32 whatever their stored dtype. One sequence at a time, positions 0..T-1.
//
// A LinearTap sees the input of every distinct projection input (q/k/v share one,
// gate/up share one, o_proj and down_proj their own) — how calibration collects its
// statistics without a second pass.
//
// Thread-safety: pure; LayerWeights is read-only during a forward.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <vector>

#include "common/status.h"
#include "formats/model_config.h"
#include "formats/model_layout.h"
#include "ops/compress_shard.h"
#include "ops/rope.h"

namespace sp {

struct LayerWeights {
  std::map<TensorRole, std::vector<float>> tensors;  // float32, stored shapes
  const float* find(TensorRole r) const {
    auto it = tensors.find(r);
    return it == tensors.end() ? nullptr : it->second.data();
  }
};

// Converts a layer's tensors to float32 by role (ignores the stale rotary buffer).
// INVALID_ARGUMENT if a tensor the architecture needs is missing.
absl::StatusOr<LayerWeights> load_layer_weights(const ModelConfig& config, std::span<const InputTensor> inputs);

enum class LinearInput { kAttention = 0, kAttentionOutput = 1, kMlp = 2, kDown = 3 };
inline constexpr int kLinearInputs = 4;
LinearInput linear_input_of(TensorRole projection);
std::string_view linear_input_name(LinearInput i);
// Width of that input (hidden, heads*head_dim, hidden, intermediate).
int64_t linear_input_width(const ModelConfig& config, LinearInput i);

// How a layer attends: RoPE or not (EXAONE's global layers are NoPE), and its sliding
// window (0: full causal).
struct LayerAttention {
  bool rope = true;
  int64_t window = 0;
};
LayerAttention layer_attention(const ModelConfig& config, int64_t layer);

using LinearTap = std::function<void(LinearInput, const float* x, int64_t tokens, int64_t width)>;

// x[tokens, hidden] is replaced by the layer's output. `rope` must cover `tokens`.
void decoder_layer_forward(const ModelConfig& config, int64_t layer, const LayerWeights& w, const RopeTable& rope,
                           float* x, int64_t tokens, const LinearTap* tap = nullptr);

// out[t, :] = weight * x[t, :] / sqrt(mean(x[t, :]^2) + eps), rows of `width`.
void rms_norm(const float* x, int64_t rows, int64_t width, const float* weight, double eps, float* out);

}  // namespace sp
