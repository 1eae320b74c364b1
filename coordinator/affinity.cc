#include "coordinator/affinity.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT

int Affinity::score(const TaskRecord& task, int stage, const std::vector<TensorMeta>& inputs,
                    const std::set<std::string>& has, const std::string& worker_id) const {
  int n = 0;
  for (const auto& m : inputs) n += has.count(m.digest()) ? 1 : 0;
  if (task.kind() != COMPRESS_LAYER) {
    auto owner = stage_owner_.find({task.job_id(), stage});
    if (owner != stage_owner_.end() && owner->second == worker_id) n += kStageOwner;
  }
  return n;
}

void Affinity::leased(const TaskRecord& task, int stage, const std::string& worker_id) {
  if (task.kind() != COMPRESS_LAYER) stage_owner_.emplace(std::make_pair(task.job_id(), stage), worker_id);
}

void Affinity::forget_job(const std::string& job_id) {
  for (auto it = stage_owner_.begin(); it != stage_owner_.end();)
    it = it->first.first == job_id ? stage_owner_.erase(it) : std::next(it);
}

}  // namespace sp
