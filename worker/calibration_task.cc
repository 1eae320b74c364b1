#include "worker/calibration_task.h"

#include <cmath>
#include <cstring>

#include "common/float_convert.h"
#include "jobs/job_plan.h"
#include "jobs/job_settings.h"
#include "fmt/format.h"
#include "ops/calibrate_layer.h"
#include "ops/decoder_layer.h"
#include "ops/finite_check.h"
#include "ops/language_model.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT

absl::StatusOr<JobSettings> lease_settings(const LeaseResponse& lease) {
  auto s = job_settings(lease.spec());
  if (!s.ok()) return annotate(s.status(), "the lease's job spec");
  return s;
}

absl::StatusOr<CalibrationTaskResult> run_calibration_task(const LeaseResponse& lease,
                                                           std::span<const LeaseInput> inputs,
                                                           const Nf4Backend& backend, const CalibrationDevice& device) {
  SP_ASSIGN_OR_RETURN(ModelConfig config, parse_model_config(lease.model_config(), "the job's config.json"));
  const int64_t layer = lease.layer();
  if (lease.kind() != EVAL_HEAD && (layer < 0 || layer >= config.num_layers))
    return absl::InvalidArgumentError(fmt::format("layer {} is not in the model", layer));
  std::vector<ModelTensor> metas;
  metas.reserve(inputs.size());
  std::vector<GgufTensorPlan> targets;  // format gguf: where each tensor goes
  targets.reserve(inputs.size());
  std::vector<InputTensor> layer_inputs;
  const LeaseInput *ids = nullptr, *embed = nullptr, *acts_in = nullptr, *norm = nullptr, *head = nullptr,
                   *spans_in = nullptr, *stats_in = nullptr;
  for (const LeaseInput& in : inputs) {
    const std::string& name = in.meta->name();
    if (name == kCalibrationIdsTensor) { ids = &in; continue; }
    if (name == kChoiceSpansTensor) { spans_in = &in; continue; }
    if (name == kActivationsTensor) { acts_in = &in; continue; }
    if (name == kDenseStatisticsTensor) { stats_in = &in; continue; }
    const auto dt = dtype_from_name(in.meta->dtype());
    const auto role = role_from_name(in.meta->role());
    if (!dt || !role) return absl::InvalidArgumentError(fmt::format("input {}: unknown dtype or role", name));
    const bool outside_layer = *role == TensorRole::kEmbedding || *role == TensorRole::kFinalNorm ||
                               *role == TensorRole::kLmHead;  // the layer's own are checked as they load
    if (outside_layer)
      SP_RETURN_IF_ERROR(check_finite(name, in.bytes, *dt, {in.meta->shape().data(), static_cast<size_t>(in.meta->shape().size())}));
    if (*role == TensorRole::kEmbedding) { embed = &in; continue; }
    if (*role == TensorRole::kFinalNorm) { norm = &in; continue; }
    if (*role == TensorRole::kLmHead) { head = &in; continue; }
    metas.push_back(ModelTensor{name, *role, layer, TensorShape{*dt, {in.meta->shape().begin(), in.meta->shape().end()}}});
    const GgufTensorPlan* target = nullptr;
    if (in.meta->has_gguf()) {
      SP_ASSIGN_OR_RETURN(GgufTensorPlan t, gguf_tensor_plan(*in.meta));
      targets.push_back(std::move(t));
      target = &targets.back();
    }
    layer_inputs.push_back({&metas.back(), in.bytes, target});
  }

  // The activations entering this layer.
  Activations acts;
  if (acts_in) {
    const auto& s = acts_in->meta->shape();
    int64_t n = 0;
    const auto dt = dtype_from_name(acts_in->meta->dtype());
    if (!dt || (*dt != DType::kF32 && *dt != DType::kBF16) || s.size() != 3 || s[0] < 0 || s[1] < 0 ||
        s[2] != config.hidden_size || __builtin_mul_overflow(s[0], s[1], &n) || __builtin_mul_overflow(n, s[2], &n) ||
        acts_in->bytes.size() != static_cast<size_t>(n) * dtype_size(*dt))
      return absl::DataLossError("the activations input does not match its description");
    acts = Activations{s[0], s[1], s[2], to_float32(acts_in->bytes, *dt)};
  }
  std::vector<int32_t> tok;
  if (ids) {
    const auto& s = ids->meta->shape();
    int64_t n = 0;
    if (ids->meta->dtype() != "I32" || s.size() != 2 || s[0] < 0 || s[1] < 0 || __builtin_mul_overflow(s[0], s[1], &n) ||
        ids->bytes.size() != static_cast<size_t>(n) * 4)
      return absl::DataLossError("the token ids do not match their description");
    tok.resize(static_cast<size_t>(s[0] * s[1]));
    std::memcpy(tok.data(), ids->bytes.data(), ids->bytes.size());
    for (int32_t t : tok)
      if (t < 0 || t >= config.vocab_size) return absl::DataLossError(fmt::format("token id {} out of range", t));
    if (acts_in && (s[0] != acts.sequences || s[1] != acts.tokens))
      return absl::DataLossError("the token ids and the activations disagree in shape");
  }
  auto floats = [](const LeaseInput& in) { return to_float32(in.bytes, *dtype_from_name(in.meta->dtype())); };
  if (!acts_in) {
    if (!ids || !embed) return absl::InvalidArgumentError("the first layer's task needs the embeddings and the ids");
    acts = embed_calibration(config, floats(*embed), tok.data(), ids->meta->shape(0), ids->meta->shape(1));
  }

  CalibrationTaskResult out;
  if (lease.kind() == EVAL_HEAD) {
    const LeaseInput* out_head = head ? head : embed;
    if (!norm || !out_head || !ids) return absl::InvalidArgumentError("the head task needs the final norm, head and ids");
    const std::vector<float> nw = floats(*norm), hw = floats(*out_head);
    if (spans_in) {  // multiple choice: each sequence's choice tokens only, up to its own length
      if (spans_in->meta->dtype() != "I32" || spans_in->bytes.size() != static_cast<size_t>(acts.sequences) * 8)
        return absl::DataLossError("the choice spans do not match the sequences");
      std::vector<int32_t> spans(static_cast<size_t>(acts.sequences) * 2);
      std::memcpy(spans.data(), spans_in->bytes.data(), spans_in->bytes.size());
      for (int64_t s = 0; s < acts.sequences; ++s) {
        const int64_t first = spans[2 * s], len = spans[2 * s + 1];
        if (first < 1 || len <= first || len > acts.tokens)
          return absl::DataLossError(fmt::format("sequence {}: choice span [{}, {}) is not inside it", s, first, len));
        const SequenceScore sc =
            score_hidden(config, nw.data(), hw.data(), acts.row(s), tok.data() + s * acts.tokens, len, nullptr, first);
        out.nll += sc.nll;
        out.predictions += sc.predictions;
        out.logliks.push_back(-sc.nll);
      }
    }
    for (int64_t s = 0; s < acts.sequences && !spans_in; ++s) {
      const SequenceScore sc =
          score_hidden(config, nw.data(), hw.data(), acts.row(s), tok.data() + s * acts.tokens, acts.tokens);
      out.nll += sc.nll;
      out.predictions += sc.predictions;
    }
    if (!std::isfinite(out.nll))
      return absl::InvalidArgumentError(
          "the model's log-likelihood is not finite: its activations overflow float32 (weights out of range?)");
    return out;
  }
  ShardResult& result = out.result;
  SP_ASSIGN_OR_RETURN(const JobSettings settings, lease_settings(lease));
  const bool sequential = !(settings.calibration && settings.calibration->pipelined);
  std::vector<OutputTensor> statistics;  // the last group, when asked for
  if (lease.kind() == FORWARD_LAYER) {
    SP_ASSIGN_OR_RETURN(LayerWeights lw, load_layer_weights(config, layer_inputs));
    SP_RETURN_IF_ERROR(forward_layer(config, layer, lw, acts, device));
  } else {
    // Dense statistics another job computed on the same weights and activations, or ours
    // for the jobs that wait for them.
    std::vector<uint8_t> collected;
    DenseStatistics shared;
    if (stats_in) {
      if (stats_in->meta->dtype() != "F32") return absl::DataLossError("the shared dense statistics are not float32");
      shared.given = stats_in->bytes;
    }
    if (lease.return_statistics() && !stats_in) shared.collected = &collected;
    SP_ASSIGN_OR_RETURN(CalibratedLayer cl, calibrate_layer(config, layer, layer_inputs, acts, settings.compress,
                                                            sequential, backend, device, shared));
    result = std::move(cl.result);
    if (shared.collected)
      statistics = {{TensorSpec{kDenseStatisticsTensor, DType::kF32, {static_cast<int64_t>(collected.size() / sizeof(float))}},
                         std::move(collected)}};
  }
  if (lease.kind() == FORWARD_LAYER || (sequential && layer + 1 < config.num_layers)) {
    const DType wire = activations_dtype(lease.spec());
    result.groups.push_back({{TensorSpec{kActivationsTensor, wire, {acts.sequences, acts.tokens, acts.hidden}},
                              from_float32(acts.data, wire)}});
  }
  if (!statistics.empty()) result.groups.push_back(std::move(statistics));
  return out;
}

}  // namespace sp
