#include "ops/importance.h"

#include <cstring>

#include <algorithm>
#include <thread>

#include "fmt/format.h"
#include "ops/ggml_quants.h"
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

ImatrixEntry imatrix_entry(std::string name, std::span<const float> sums, int64_t tokens, int32_t ncall) {
  ImatrixEntry e{std::move(name), ncall, std::vector<float>(sums.size())};
  for (size_t j = 0; j < sums.size(); ++j)
    e.values[j] = sums[j] / static_cast<float>(tokens) * static_cast<float>(ncall);
  return e;
}

absl::StatusOr<CalibratedLayer> importance_weighted_layer(const ModelConfig& config, int64_t layer,
                                                          std::span<const InputTensor> inputs, Activations& acts) {
  for (const InputTensor& in : inputs)
    if (!in.gguf) return annotate(absl::InvalidArgumentError("no GGUF target in the plan"), in.meta->name);
  SP_ASSIGN_OR_RETURN(LayerImportance li, layer_importance(config, layer, inputs, acts));
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  CalibratedLayer out;
  for (const InputTensor& in : inputs) {
    const ModelTensor& meta = *in.meta;
    GgufTensorPlan p = *in.gguf;
    TensorReport report{meta.name, meta.role};
    if (is_linear_weight(meta.role)) {
      const ImatrixEntry e = imatrix_entry(p.name, li.sum_squares[static_cast<int>(linear_input_of(meta.role))],
                                           li.tokens, static_cast<int32_t>(acts.sequences));
      SP_ASSIGN_OR_RETURN(p.importance, entry_importance(e, p.ne[0]));
      report.quantized = ggml_traits(p.type).block > 1;
      out.linears.push_back(LinearReport{meta.name});
    }
    out.result.groups.push_back({{TensorSpec{p.name, DType::kU8, {static_cast<int64_t>(p.bytes)}},
                                  gguf_tensor_bytes(p, in.bytes, meta.stored.dtype, meta.stored.shape, threads)}});
    out.result.reports.push_back(std::move(report));
  }
  return out;
}

}  // namespace sp
