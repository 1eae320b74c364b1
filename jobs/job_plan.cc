#include "jobs/job_plan.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "fmt/format.h"
#include "ops/calibrate_layer.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT

DType activations_dtype(const JobSpec& spec) {
  if (!spec.eval().ids().empty()) return DType::kF32;
  return spec.calibrate().activations() == "bfloat16" ? DType::kBF16 : kCalibrationActivationsDType;
}

namespace {

InputRef shard_ref(int shard) {
  InputRef r;
  r.set_shard(shard);
  return r;
}

InputRef activations_ref(const std::string& task) {
  InputRef r;
  r.set_activations_of(task);
  return r;
}

TaskPlan* add_task(JobPlan& plan, const std::string& name, TaskKind kind, int shard, uint64_t memory) {
  TaskPlan* t = plan.add_tasks();
  t->set_name(name);
  t->set_kind(kind);
  t->set_shard(shard);
  t->set_memory(memory);
  return t;
}

}  // namespace

GgufTarget gguf_target(const GgufTensorPlan& p) {
  GgufTarget g;
  g.set_name(p.name);
  g.set_type(static_cast<uint32_t>(p.type));
  for (int64_t d : p.ne) g.add_ne(d);
  g.set_nbytes(p.bytes);
  g.set_permute_heads(p.permute_heads);
  for (float v : p.importance) g.add_importance(v);
  return g;
}

absl::StatusOr<GgufTensorPlan> gguf_tensor_plan(const TensorMeta& in) {
  const GgufTarget& g = in.gguf();
  bool known = false;
  for (const auto& tr : ggml_types()) known |= static_cast<uint32_t>(tr.type) == g.type();
  if (!known || g.ne().empty() || g.ne(0) <= 0 || g.ne(0) % ggml_traits(static_cast<GgmlType>(g.type())).block != 0)
    return absl::InvalidArgumentError(fmt::format("GGUF target {}: type {} with rows of {} cannot be written", g.name(),
                                                  g.type(), g.ne().empty() ? 0 : g.ne(0)));
  int64_t n = 1;
  for (int64_t d : g.ne()) n *= d;
  if (ggml_nbytes(static_cast<GgmlType>(g.type()), n) != g.nbytes())
    return absl::InvalidArgumentError(fmt::format("GGUF target {}: {} bytes for its shape and type", g.name(), g.nbytes()));
  if (!std::equal(g.ne().begin(), g.ne().end(), in.shape().rbegin(), in.shape().rend()))
    return absl::InvalidArgumentError(fmt::format("GGUF target {}: its shape is not {}'s, reversed", g.name(), in.name()));
  GgufTensorPlan p;
  p.name = g.name();
  p.type = static_cast<GgmlType>(g.type());
  p.ne.assign(g.ne().begin(), g.ne().end());
  p.bytes = g.nbytes();
  p.permute_heads = g.permute_heads();
  if (g.importance_size() > 0) {
    if (g.importance_size() != g.ne(0))
      return absl::InvalidArgumentError(fmt::format("GGUF target {}: {} importance values for rows of {}", g.name(),
                                                    g.importance_size(), g.ne(0)));
    for (float v : g.importance())
      if (!std::isfinite(v) || v < 0)
        return absl::InvalidArgumentError(fmt::format("GGUF target {}: an importance value is {}", g.name(), v));
    p.importance.assign(g.importance().begin(), g.importance().end());
  }
  return p;
}

TensorMeta tensor_meta(const ModelTensor& t) {
  TensorMeta m;
  m.set_name(t.name);
  m.set_dtype(std::string(dtype_name(t.stored.dtype)));
  for (int64_t d : t.stored.shape) m.add_shape(d);
  m.set_nbytes(t.stored.nbytes());
  m.set_role(std::string(role_name(t.role)));
  return m;
}

absl::StatusOr<std::vector<GgufTensorPlan>> weighted_gguf_targets(const ModelDescription& model,
                                                                  const JobSettings& settings, const Imatrix* imatrix) {
  if (!settings.compress.gguf) return absl::InvalidArgumentError("not a format gguf job");
  SP_ASSIGN_OR_RETURN(std::vector<GgufTensorPlan> targets, plan_gguf_tensors(model, *settings.compress.gguf));
  if (imatrix) SP_RETURN_IF_ERROR(annotate(add_importance(targets, *imatrix), settings.gguf_imatrix));
  return targets;
}

JobPlan plan_job(const ModelDescription& model, const JobSettings& settings, CalibrationShape data,
                 const Imatrix* imatrix) {
  JobPlan plan;
  const bool eval = settings.kind == JobKind::kEvaluate;
  const bool calibrated = !eval && settings.calibration.has_value();
  const bool pipelined = calibrated && settings.calibration->pipelined;
  const ModelConfig& config = model.config;
  const int64_t layers = config.num_layers;
  int ids = -1, embed = -1, head = -1, lm_head = -1;
  if (calibrated || eval) {
    ShardPlan* s = plan.add_shards();
    s->set_id(kCalibrationShardId);
    s->set_auxiliary(true);
    TensorMeta* m = s->add_tensors();
    m->set_name(kCalibrationIdsTensor);
    m->set_dtype("I32");
    m->add_shape(data.sequences);
    m->add_shape(data.tokens);
    m->set_nbytes(static_cast<uint64_t>(data.sequences) * static_cast<uint64_t>(data.tokens) * 4);
    m->set_role("calibration_ids");
    if (eval && !settings.eval->choices.empty()) {  // which tokens of each sequence are its choice
      TensorMeta* spans = s->add_tensors();
      spans->set_name(kChoiceSpansTensor);
      spans->set_dtype("I32");
      spans->add_shape(data.sequences);
      spans->add_shape(2);
      spans->set_nbytes(static_cast<uint64_t>(data.sequences) * 8);
      spans->set_role("calibration_ids");
    }
    ids = 0;
    plan.add_activations_shape(data.sequences);
    plan.add_activations_shape(data.tokens);
    plan.add_activations_shape(config.hidden_size);
  }
  const std::vector<Stage> stages =
      calibrated || eval ? plan_stages(model, settings.compress, data,
                                       calibrated ? settings.calibration->stage_memory : (10ull << 30))
                         : std::vector<Stage>{};
  // format gguf: every tensor's GGUF name, type and shape, decided here once (submit has
  // checked that the model can be planned).
  std::map<std::string, GgufTensorPlan> gguf;
  if (settings.compress.gguf) {
    if (auto targets = weighted_gguf_targets(model, settings, imatrix); targets.ok()) {
      // Importance from a file (checked before planning): in each target; from the
      // calibration text: computed by the layers' tasks. Either way recorded in the header.
      if (imatrix) {
        const ImatrixRecord r = imatrix->record(settings.gguf_imatrix);
        plan.mutable_gguf_imatrix()->set_file(r.file);
        plan.mutable_gguf_imatrix()->set_dataset(r.dataset);
        plan.mutable_gguf_imatrix()->set_entries(r.entries);
        plan.mutable_gguf_imatrix()->set_chunks(r.chunks);
      } else if (settings.compress.gguf_importance) {
        int entries = 0;
        for (const auto& t : *targets) entries += is_linear_weight(model.find(t.source)->role) ? 1 : 0;
        plan.mutable_gguf_imatrix()->set_file(settings.calibration->ids);
        plan.mutable_gguf_imatrix()->set_dataset(settings.calibration->ids);
        plan.mutable_gguf_imatrix()->set_entries(entries);
        plan.mutable_gguf_imatrix()->set_chunks(static_cast<int32_t>(data.sequences));
      }
      for (auto& t : *targets) gguf[t.source] = std::move(t);
    }
  }
  for (const ModelShard& ms : model.shards) {
    const int index = plan.shards_size();
    ShardPlan* s = plan.add_shards();
    s->set_id(ms.id);
    s->set_is_layer(ms.kind == ShardKind::kLayer);
    s->set_layer(ms.layer);
    for (const auto& name : ms.tensors) {
      TensorMeta* m = s->add_tensors();
      *m = tensor_meta(*model.find(name));
      if (auto g = gguf.find(name); g != gguf.end()) *m->mutable_gguf() = gguf_target(g->second);
    }
    if (settings.compress.gguf && ms.kind != ShardKind::kLayer) {  // embeddings and head are converted too
      s->set_output_task(ms.id);
      TaskPlan* t = add_task(plan, ms.id, COMPRESS_LAYER, index, estimate_task_memory(ms, settings.compress).total());
      t->add_inputs()->CopyFrom(shard_ref(index));
    }
    for (size_t k = 0; k < stages.size(); ++k)
      if (ms.kind == ShardKind::kLayer && ms.layer >= stages[k].first_layer && ms.layer <= stages[k].last_layer)
        s->set_stage(static_cast<int>(k));
    if (ms.kind == ShardKind::kEmbedding) embed = index;
    if (ms.kind == ShardKind::kFinalNorm) head = index;
    if (ms.kind == ShardKind::kLmHead) lm_head = index;
  }
  // The tasks, layer by layer (and the evaluation head last).
  for (int index = 0; index < plan.shards_size(); ++index) {
    ShardPlan& s = *plan.mutable_shards(index);
    if (!s.is_layer()) continue;
    const int64_t i = s.layer();
    const ModelShard& ms = model.shards[static_cast<size_t>(index - (ids >= 0 ? 1 : 0))];
    // What enters layer i: the embeddings and the ids for the first, else activations.
    const std::string feeder = i == 0 ? "" : fmt::format("{}.{}", pipelined || eval ? "fwd" : "layer", i - 1);
    auto wire = [&](TaskPlan* t) {
      t->add_inputs()->CopyFrom(shard_ref(index));
      if (feeder.empty()) {
        t->add_inputs()->CopyFrom(shard_ref(embed));
        t->add_inputs()->CopyFrom(shard_ref(ids));
      } else {
        t->add_depends_on(feeder);
        t->add_inputs()->CopyFrom(activations_ref(feeder));
      }
    };
    if (eval) {
      TaskPlan* f = add_task(plan, fmt::format("fwd.{}", i), FORWARD_LAYER, index,
                             estimate_forward_memory(ms, config, data).total());
      wire(f);
      f->set_returns_activations(true);
      continue;
    }
    const std::string name = fmt::format("layer.{}", i);
    s.set_output_task(name);
    if (!calibrated) {
      TaskPlan* t = add_task(plan, name, COMPRESS_LAYER, index, estimate_task_memory(ms, settings.compress).total());
      t->add_inputs()->CopyFrom(shard_ref(index));
      continue;
    }
    TaskPlan* t = add_task(plan, name, CALIBRATE_STAGE, index,
                           estimate_calibration_memory(ms, config, settings.compress, data).total());
    wire(t);
    t->set_returns_activations(!pipelined && i + 1 < layers);
    // Sequential: the boundary stays on this worker unless it is a checkpoint (every
    // checkpoint_every layers) or a stage that fits a worker ends there (the next stage may
    // run elsewhere; a layer too big for stage_memory alone is its own stage, no boundary).
    const bool stage_end =
        std::any_of(stages.begin(), stages.end(), [&](const Stage& st) { return st.fits && st.last_layer == i; });
    t->set_keeps_activations(t->returns_activations() && (i + 1) % settings.calibration->checkpoint_every != 0 &&
                             !stage_end);
    if (pipelined && i + 1 < layers) {
      TaskPlan* f = add_task(plan, fmt::format("fwd.{}", i), FORWARD_LAYER, index,
                             estimate_forward_memory(ms, config, data).total());
      wire(f);
      f->set_returns_activations(true);
    }
  }
  if (eval) {
    TaskPlan* h = add_task(plan, "head", EVAL_HEAD, head, estimate_eval_head_memory(config, data).total());
    h->add_depends_on(fmt::format("fwd.{}", layers - 1));
    h->add_inputs()->CopyFrom(shard_ref(head));
    h->add_inputs()->CopyFrom(shard_ref(lm_head >= 0 ? lm_head : embed));  // tied: the embeddings
    h->add_inputs()->CopyFrom(shard_ref(ids));
    h->add_inputs()->CopyFrom(activations_ref(fmt::format("fwd.{}", layers - 1)));
  }
  return plan;
}

int last_shard_read(const TaskPlan& task) {
  int last = task.shard();
  for (const auto& in : task.inputs())
    if (in.activations_of().empty()) last = std::max(last, in.shard());
  return last;
}

std::vector<TensorMeta> resolve_inputs(const JobPlan& plan, const TaskPlan& task,
                                       const std::function<const TaskRecord*(const std::string&)>& find_task) {
  std::vector<TensorMeta> out;
  for (const auto& in : task.inputs()) {
    if (in.activations_of().empty()) {
      for (const auto& m : plan.shards(in.shard()).tensors()) out.push_back(m);
      continue;
    }
    if (const TaskRecord* producer = find_task(in.activations_of()))
      for (const auto& g : producer->outputs())
        for (const auto& m : g.tensors())
          if (m.name() == kActivationsTensor) out.push_back(m);
  }
  return out;
}

std::string holder_of_inputs(const JobPlan& plan, const TaskPlan& task,
                             const std::function<const TaskRecord*(const std::string&)>& find_task) {
  for (const auto& in : task.inputs()) {
    if (in.activations_of().empty()) continue;
    const TaskRecord* producer = find_task(in.activations_of());
    if (!producer || producer->plan_index() < 0 || producer->plan_index() >= plan.tasks_size()) continue;
    if (plan.tasks(producer->plan_index()).keeps_activations()) return producer->worker_id();
  }
  return "";
}

}  // namespace sp
