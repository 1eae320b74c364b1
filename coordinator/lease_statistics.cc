// Which dense calibration statistics a lease takes from another job or returns for others
// (the rule: coordinator/shared_statistics.h).
#include "coordinator/coordinator.h"
#include "coordinator/shared_statistics.h"
#include "fmt/format.h"
#include "jobs/job_plan.h"
#include "jobs/job_settings.h"
#include "ops/calibrate_layer.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT: the record types

std::string Coordinator::statistics_key_locked(const JobRecord& j, const TaskRecord& t) const {
  if (t.kind() != CALIBRATE_STAGE || t.plan_index() < 0 || t.plan_index() >= j.plan().tasks_size()) return "";
  return dense_statistics_key(j, j.plan().tasks(t.plan_index()), task_inputs(j, t));
}

void Coordinator::share_statistics_locked(Change& c, const JobRecord& j, TaskRecord& t) {
  t.clear_statistics_key();
  t.set_returns_statistics(false);
  t.clear_statistics_from();
  const std::string key = statistics_key_locked(j, t);
  if (key.empty()) return;
  t.set_statistics_key(key);
  // Another job's finished task computed them: take its blob while it is stored.
  for (const JobRecord* o : jobs_.in_order()) {
    if (o->id() == j.id()) continue;
    for (const TaskRecord* p : scheduler_.tasks_of(o->id())) {
      if (p->state() != DONE || p->statistics_key() != key) continue;
      const TensorMeta* m = dense_statistics_output(*p);
      if (!m) continue;
      auto have = blobs_->contains(m->digest());
      if (!have.ok() || !*have) continue;
      t.set_statistics_from(p->id());
      add_event(c, j.id(), fmt::format("{}: takes the dense calibration statistics {} computed (the same weights "
                                       "and activations): its dense pass does not run again",
                                       t.id(), p->id()));
      return;
    }
  }
  // Else return them when another unfinished job may want them: its task with this key, or
  // (a first layer, reading no activations) the same model and calibration text still importing.
  const TaskPlan& plan_task = j.plan().tasks(t.plan_index());
  bool reads_activations = false;
  for (const auto& in : plan_task.inputs()) reads_activations = reads_activations || !in.activations_of().empty();
  const CalibrateSpec& cal = j.spec().calibrate();
  int others = 0;
  for (const JobRecord* o : jobs_.in_order()) {
    if (o->id() == j.id() || (o->state() != QUEUED && o->state() != RUNNING) || !shares_dense_statistics(o->spec()))
      continue;
    const TaskRecord* ot = scheduler_.find(o->id() + "/" + plan_task.name());
    if (ot && (ot->state() == DONE || ot->state() == LEASED)) continue;
    const std::string their = ot ? statistics_key_locked(*o, *ot) : "";
    const CalibrateSpec& oc = o->spec().calibrate();
    const bool may_match = !reads_activations && o->spec().model() == j.spec().model() && oc.ids() == cal.ids() &&
                           oc.samples() == cal.samples() && oc.seq_len() == cal.seq_len();
    if (their == key || (their.empty() && may_match)) ++others;
  }
  if (others == 0) return;
  t.set_returns_statistics(true);
  add_event(c, j.id(), fmt::format("{}: returns its dense calibration statistics for {} other job{} calibrating the "
                                   "same layer",
                                   t.id(), others, others == 1 ? "" : "s"));
}

int64_t Coordinator::statistics_values_locked(const JobRecord& j) const {
  auto config = parse_model_config(j.model_config(), "the job's config.json");
  return config.ok() ? dense_statistics_size(*config) : 0;
}

const TensorMeta* Coordinator::statistics_source_locked(const TaskRecord& t) const {
  if (t.statistics_from().empty()) return nullptr;
  const TaskRecord* p = scheduler_.find(t.statistics_from());
  return p ? dense_statistics_output(*p) : nullptr;
}

}  // namespace sp
