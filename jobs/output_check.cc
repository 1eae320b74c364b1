#include "jobs/output_check.h"

#include "fmt/format.h"
#include "formats/bnb_format.h"
#include "formats/model_layout.h"
#include "jobs/job_plan.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT

ExpectedOutput expected_output(const TensorMeta& in, const CompressSettings& settings) {
  if (settings.gguf && in.has_gguf())  // its GGUF bytes, under its GGUF name
    return {{TensorSpec{in.gguf().name(), DType::kU8, {static_cast<int64_t>(in.gguf().nbytes())}}}, false};
  const auto role = role_from_name(in.role());
  const ModelTensor t{in.name(), role.value_or(TensorRole::kEmbedding), -1,
                      TensorShape{dtype_from_name(in.dtype()).value_or(DType::kU8), {in.shape().begin(), in.shape().end()}}};
  const bool compressed = role && compresses(t, settings);  // an unknown role passes through
  ExpectedOutput out;
  out.tensors = compressed ? output_specs(t, settings) : std::vector<TensorSpec>{{t.name, t.stored.dtype, t.stored.shape}};
  out.same_bytes = !compressed;
  return out;
}

absl::Status check_outputs(const ShardPlan& shard, const CompressSettings& settings, const CompleteRequest& r,
                           const std::vector<int64_t>& activations, bool forward_only, DType activations_dtype,
                           int64_t statistics) {
  const int layer_groups = forward_only ? 0 : shard.tensors_size();
  const int want_groups = layer_groups + (activations.empty() ? 0 : 1) + (statistics > 0 ? 1 : 0);
  if (r.outputs_size() != want_groups)
    return absl::InvalidArgumentError(fmt::format("{} output groups, expected {}", r.outputs_size(), want_groups));
  if (!activations.empty()) {
    const OutputGroup& g = r.outputs(layer_groups);
    uint64_t numel = 1;
    for (int64_t d : activations) numel *= static_cast<uint64_t>(d);
    if (g.tensors_size() != 1 || g.tensors(0).name() != "__activations__" ||
        g.tensors(0).dtype() != dtype_name(activations_dtype) ||
        std::vector<int64_t>(g.tensors(0).shape().begin(), g.tensors(0).shape().end()) != activations ||
        g.tensors(0).nbytes() != numel * dtype_size(activations_dtype))
      return absl::InvalidArgumentError("the activations output does not match the calibration plan");
  }
  if (statistics > 0) {
    const OutputGroup& g = r.outputs(want_groups - 1);
    if (g.tensors_size() != 1 || g.tensors(0).name() != kDenseStatisticsTensor || g.tensors(0).dtype() != "F32" ||
        g.tensors(0).shape_size() != 1 || g.tensors(0).shape(0) != statistics ||
        g.tensors(0).nbytes() != static_cast<uint64_t>(statistics) * sizeof(float))
      return absl::InvalidArgumentError(
          fmt::format("the dense statistics returned are not one float32 tensor of {} values", statistics));
  }
  for (int i = 0; i < layer_groups; ++i) {
    const TensorMeta& in = shard.tensors(i);
    const OutputGroup& g = r.outputs(i);
    const auto [want, same_bytes] = expected_output(in, settings);
    if (g.tensors_size() != static_cast<int>(want.size()))
      return absl::InvalidArgumentError(fmt::format("{}: {} outputs, expected {}", in.name(), g.tensors_size(), want.size()));
    for (int k = 0; k < g.tensors_size(); ++k) {
      const TensorMeta& got = g.tensors(k);
      const TensorSpec& w = want[static_cast<size_t>(k)];
      const bool json_state = w.max_nbytes > 0;  // the quant_state JSON: its length varies
      const auto dt = dtype_from_name(got.dtype());
      uint64_t numel = 1;
      for (int64_t d : got.shape()) numel *= static_cast<uint64_t>(d);
      const bool shape_ok = json_state ? (got.shape_size() == 1 && got.shape(0) > 0 && static_cast<uint64_t>(got.shape(0)) <= w.max_nbytes)
                                       : std::vector<int64_t>(got.shape().begin(), got.shape().end()) == w.shape;
      if (got.name() != w.name || !dt || *dt != w.dtype || !shape_ok || got.nbytes() != numel * dtype_size(*dt) ||
          (same_bytes && got.digest() != in.digest()))
        return absl::InvalidArgumentError(fmt::format("output {} does not match the plan for {}", got.name(), in.name()));
    }
  }
  return absl::OkStatus();
}

}  // namespace sp
