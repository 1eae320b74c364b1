#include "jobs/calibration_plan.h"

#include "fmt/format.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT

std::vector<TaskRecord> calibration_tasks(const std::string& job_id, int shard_index, int64_t layer,
                                          int64_t num_layers, bool pipelined) {
  std::vector<TaskRecord> out;
  TaskRecord t;
  t.set_id(fmt::format("{}/layer.{}", job_id, layer));
  t.set_job_id(job_id);
  t.set_shard_index(shard_index);
  t.set_kind(CALIBRATE_STAGE);
  t.set_state(layer == 0 ? READY : WAITING);
  if (layer > 0) t.add_depends_on(fmt::format("{}/{}.{}", job_id, pipelined ? "fwd" : "layer", layer - 1));
  out.push_back(t);
  if (pipelined && layer + 1 < num_layers) {
    TaskRecord f = t;
    f.set_id(fmt::format("{}/fwd.{}", job_id, layer));
    f.set_kind(FORWARD_LAYER);
    out.push_back(f);
  }
  return out;
}

std::vector<TaskRecord> eval_tasks(const std::string& job_id, int shard_index, int64_t layer, int64_t num_layers) {
  TaskRecord t;
  t.set_job_id(job_id);
  t.set_shard_index(shard_index);
  if (layer < 0) {
    t.set_id(fmt::format("{}/head", job_id));
    t.set_kind(EVAL_HEAD);
    t.set_state(WAITING);
    t.add_depends_on(fmt::format("{}/fwd.{}", job_id, num_layers - 1));
  } else {
    t.set_id(fmt::format("{}/fwd.{}", job_id, layer));
    t.set_kind(FORWARD_LAYER);
    t.set_state(layer == 0 ? READY : WAITING);
    if (layer > 0) t.add_depends_on(fmt::format("{}/fwd.{}", job_id, layer - 1));
  }
  return {t};
}

std::vector<TensorMeta> task_inputs(const JobRecord& j, const TaskRecord& t, const TaskScheduler& scheduler) {
  std::vector<TensorMeta> in(j.shards(t.shard_index()).tensors().begin(), j.shards(t.shard_index()).tensors().end());
  if (t.kind() == COMPRESS_LAYER) return in;
  if (t.kind() == EVAL_HEAD) {
    const ShardPlan* head = nullptr;
    for (const auto& s : j.shards())
      if (s.id() == "lm_head" || (!head && s.id() == "embed")) head = &s;  // lm_head, else tied embeddings
    if (head)
      for (const auto& m : head->tensors()) in.push_back(m);
    for (const auto& s : j.shards())
      if (s.auxiliary())
        for (const auto& m : s.tensors()) in.push_back(m);
  }
  if (t.depends_on_size() > 0) {
    const TaskRecord* dep = scheduler.find(t.depends_on(0));
    if (dep)
      for (const auto& g : dep->outputs())
        for (const auto& m : g.tensors())
          if (m.name() == kActivationsTensor) in.push_back(m);
    return in;
  }
  for (const auto& s : j.shards()) {
    if (s.id() == "embed")
      for (const auto& m : s.tensors()) in.push_back(m);
    if (s.auxiliary())
      for (const auto& m : s.tensors()) in.push_back(m);
  }
  return in;
}

bool returns_activations(const JobRecord& j, const TaskRecord& t) {
  if (t.kind() == FORWARD_LAYER) return true;
  if (t.kind() != CALIBRATE_STAGE || j.spec().calibrate().mode() == "pipelined") return false;
  // The last layer feeds no one.
  int64_t last = -1;
  for (const auto& s : j.shards())
    if (s.is_layer()) last = std::max<int64_t>(last, s.layer());
  return j.shards(t.shard_index()).layer() < last;
}

std::vector<int64_t> activations_shape(const JobRecord& j) {
  for (const auto& s : j.shards())
    if (s.auxiliary() && s.tensors_size() == 1 && s.tensors(0).shape_size() == 2)
      return {s.tensors(0).shape(0), s.tensors(0).shape(1), j.hidden_size()};
  return {};
}

}  // namespace sp
