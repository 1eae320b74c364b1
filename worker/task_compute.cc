#include "worker/task_compute.h"

#include <optional>

#include "common/digest.h"
#include "jobs/job_plan.h"
#include "fmt/format.h"
#include "worker/calibration_task.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT

absl::StatusOr<TaskOutcome> compute_task(const LeaseResponse& lease, std::span<const std::span<const uint8_t>> bytes,
                                         const DeviceChoice& device, uint64_t gpu_memory) {
  if (bytes.size() != static_cast<size_t>(lease.inputs_size()))
    return absl::InvalidArgumentError(
        fmt::format("{} input buffers for {} inputs", bytes.size(), lease.inputs_size()));
  std::vector<ModelTensor> metas;
  metas.reserve(bytes.size());
  std::vector<std::optional<GgufTensorPlan>> gguf(bytes.size());  // format gguf: each input's target
  for (int i = 0; i < lease.inputs_size(); ++i) {
    const TensorMeta& in = lease.inputs(i);
    const auto b = bytes[static_cast<size_t>(i)];
    const auto dt = dtype_from_name(in.dtype());
    if (!dt) return absl::InvalidArgumentError(fmt::format("input {}: unknown dtype", in.name()));
    uint64_t numel = 1;
    for (int64_t d : in.shape()) numel *= static_cast<uint64_t>(d);
    if (numel * dtype_size(*dt) != b.size() || b.size() != in.nbytes())
      return absl::DataLossError(fmt::format("input {}: shape and bytes disagree (damaged lease?)", in.name()));
    if (lease.kind() != COMPRESS_LAYER) continue;
    const auto role = role_from_name(in.role());
    if (!role) return absl::InvalidArgumentError(fmt::format("input {}: unknown role", in.name()));
    metas.push_back(ModelTensor{in.name(), *role, -1, TensorShape{*dt, {in.shape().begin(), in.shape().end()}}});
    if (in.has_gguf()) {
      SP_ASSIGN_OR_RETURN(gguf[static_cast<size_t>(i)], gguf_tensor_plan(in));
    }
  }
  TaskOutcome out;
  if (lease.kind() == COMPRESS_LAYER) {
    std::vector<InputTensor> inputs;
    for (size_t i = 0; i < metas.size(); ++i) inputs.push_back({&metas[i], bytes[i], gguf[i] ? &*gguf[i] : nullptr});
    SP_ASSIGN_OR_RETURN(const JobSettings settings, lease_settings(lease));
    SP_ASSIGN_OR_RETURN(out.result, compress_shard(inputs, settings.compress, nf4_backend_for(device),
                                                   prune_device_for(device)));
    return out;
  }
  std::vector<LeaseInput> inputs;
  for (int i = 0; i < lease.inputs_size(); ++i) inputs.push_back({&lease.inputs(i), bytes[static_cast<size_t>(i)]});
  SP_ASSIGN_OR_RETURN(CalibrationTaskResult r, run_calibration_task(lease, inputs, nf4_backend_for(device),
                                                                    calibration_device_for(device, gpu_memory)));
  out.result = std::move(r.result);
  out.nll = r.nll;
  out.predictions = r.predictions;
  out.logliks = std::move(r.logliks);
  return out;
}

CompleteRequest completion(const LeaseResponse& lease, const std::string& worker_id, const TaskOutcome& outcome) {
  CompleteRequest c;
  c.set_worker_id(worker_id);
  c.set_task_id(lease.task_id());
  c.set_attempt(lease.attempt());
  c.set_nll(outcome.nll);
  c.set_predictions(outcome.predictions);
  for (double v : outcome.logliks) c.add_logliks(v);
  for (const auto& group : outcome.result.groups) {
    OutputGroup* g = c.add_outputs();
    for (const auto& t : group) {
      TensorMeta* m = g->add_tensors();
      m->set_name(t.spec.name);
      m->set_dtype(std::string(dtype_name(t.spec.dtype)));
      for (int64_t d : t.spec.shape) m->add_shape(d);
      m->set_nbytes(t.data.size());
      m->set_digest(digest_hex(t.data));
    }
  }
  for (const auto& r : outcome.result.reports) {
    if (!r.prune) continue;
    PruneReport* p = c.add_prune_reports();
    p->set_name(r.name);
    p->set_pruned(r.prune->pruned);
    p->set_zeros(r.prune->zeros);
    p->set_total(r.prune->total);
  }
  return c;
}

}  // namespace sp
