#include "jobs/output_check.h"

#include "fmt/format.h"
#include "formats/bnb_format.h"
#include "formats/model_layout.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT

namespace {
constexpr int64_t kMaxQuantStateBytes = 512;
}  // namespace

ExpectedOutput expected_output(const TensorMeta& in, const CompressSettings& settings) {
  const auto role = role_from_name(in.role());
  const bool linear = role && is_linear_weight(*role) && (settings.prune || settings.quantize);
  ExpectedOutput out;
  if (linear && settings.quantize && in.shape_size() == 2) {
    out.tensors = nf4_weight_specs(in.name(), in.shape(0), in.shape(1), settings.quantize->blocksize,
                                   settings.quantize->double_quant, kMaxQuantStateBytes);
  } else {
    out.tensors.push_back({in.name(), *dtype_from_name(in.dtype()), {in.shape().begin(), in.shape().end()}});
    out.same_bytes = !linear;
  }
  return out;
}

absl::Status check_outputs(const ShardPlan& shard, const CompressSettings& settings, const CompleteRequest& r,
                           const std::vector<int64_t>& activations, bool forward_only, DType activations_dtype) {
  const int layer_groups = forward_only ? 0 : shard.tensors_size();
  const int want_groups = layer_groups + (activations.empty() ? 0 : 1);
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
  for (int i = 0; i < layer_groups; ++i) {
    const TensorMeta& in = shard.tensors(i);
    const OutputGroup& g = r.outputs(i);
    const auto [want, same_bytes] = expected_output(in, settings);
    if (g.tensors_size() != static_cast<int>(want.size()))
      return absl::InvalidArgumentError(fmt::format("{}: {} outputs, expected {}", in.name(), g.tensors_size(), want.size()));
    for (int k = 0; k < g.tensors_size(); ++k) {
      const TensorMeta& got = g.tensors(k);
      const TensorSpec& w = want[static_cast<size_t>(k)];
      const bool json_state = w.name.ends_with(kQuantStateSuffix);  // its length varies
      const auto dt = dtype_from_name(got.dtype());
      uint64_t numel = 1;
      for (int64_t d : got.shape()) numel *= static_cast<uint64_t>(d);
      const bool shape_ok = json_state ? (got.shape_size() == 1 && got.shape(0) > 0 && got.shape(0) <= kMaxQuantStateBytes)
                                       : std::vector<int64_t>(got.shape().begin(), got.shape().end()) == w.shape;
      if (got.name() != w.name || !dt || *dt != w.dtype || !shape_ok || got.nbytes() != numel * dtype_size(*dt) ||
          (same_bytes && got.digest() != in.digest()))
        return absl::InvalidArgumentError(fmt::format("output {} does not match the plan for {}", got.name(), in.name()));
    }
  }
  return absl::OkStatus();
}

}  // namespace sp
