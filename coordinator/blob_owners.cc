#include "coordinator/blob_owners.h"

#include <map>

#include "jobs/job_plan.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT

BlobOwnerSet blob_owners(const JobRecord& job, const std::vector<const TaskRecord*>& tasks) {
  BlobOwnerSet out;
  const JobPlan& plan = job.plan();
  const bool succeeded = job.state() == SUCCEEDED;
  const bool eval = !job.spec().eval().ids().empty();
  if (succeeded && eval) return out;
  for (const auto& s : plan.shards()) {
    // After success only what assembly copies as it is (no task replaces it).
    if (succeeded && (s.auxiliary() || !s.output_task().empty())) continue;
    for (const auto& m : s.tensors())
      if (!m.digest().empty()) out.insert({m.digest(), job.id()});
  }
  std::map<std::string, const TaskRecord*> by_name;
  for (const auto* t : tasks) by_name[t->id().substr(t->id().rfind('/') + 1)] = t;
  for (const auto* t : tasks) {
    if (t->state() != DONE) continue;
    for (const auto& g : t->outputs())
      for (const auto& m : g.tensors())
        if (!is_internal_tensor(m.name()) || m.name() == kDenseStatisticsTensor)
          out.insert({m.digest(), job.id()});
  }
  // Activations: owned by each planned reader that is not DONE yet.
  for (const auto& reader : plan.tasks()) {
    auto r = by_name.find(reader.name());
    if (r != by_name.end() && r->second->state() == DONE) continue;
    for (const auto& in : reader.inputs()) {
      if (in.activations_of().empty()) continue;
      auto producer = by_name.find(in.activations_of());
      if (producer == by_name.end() || producer->second->state() != DONE) continue;
      const int pi = producer->second->plan_index();
      if (pi >= 0 && pi < plan.tasks_size() && plan.tasks(pi).keeps_activations()) continue;  // on its worker
      for (const auto& g : producer->second->outputs())
        for (const auto& m : g.tensors())
          if (m.name() == kActivationsTensor) out.insert({m.digest(), job.id() + "/" + reader.name()});
    }
  }
  return out;
}

}  // namespace sp
