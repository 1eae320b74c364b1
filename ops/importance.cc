#include "ops/importance.h"

#include <cstring>

#include "ops/rope.h"

namespace sp {

absl::StatusOr<LayerImportance> layer_importance(const ModelConfig& config, int64_t layer,
                                                 std::span<const InputTensor> inputs, Activations& acts) {
  SP_ASSIGN_OR_RETURN(LayerWeights lw, load_layer_weights(config, inputs));
  SP_ASSIGN_OR_RETURN(RopeTable rope, rope_table(config, acts.tokens));
  LayerImportance out;
  for (int i = 0; i < kLinearInputs; ++i)
    out.sum_squares[i].assign(static_cast<size_t>(linear_input_width(config, static_cast<LinearInput>(i))), 0.0f);
  const LinearTap tap = [&](LinearInput in, const float* x, int64_t tokens, int64_t width) {
    float* sums = out.sum_squares[static_cast<int>(in)].data();
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t j = 0; j < width; ++j) sums[j] += x[t * width + j] * x[t * width + j];
  };
  std::vector<float> x(static_cast<size_t>(acts.tokens * acts.hidden));
  for (int64_t s = 0; s < acts.sequences; ++s) {
    std::memcpy(x.data(), acts.row(s), x.size() * sizeof(float));
    decoder_layer_forward(config, layer, lw, rope, x.data(), acts.tokens, &tap);
    std::memcpy(acts.row(s), x.data(), x.size() * sizeof(float));
  }
  out.tokens = acts.sequences * acts.tokens;
  return out;
}

}  // namespace sp
