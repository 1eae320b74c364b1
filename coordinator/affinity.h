// Which worker a task should go to, beyond "it fits": the one that already has its inputs
// in its cache, and, for calibration, the one running the task's stage (its layers'
// weights are cached there and the chain of activations stays on one machine).
//
// Thread-safety: not thread-safe; used under the coordinator's mutex.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "shardpress.pb.h"

namespace sp {

class Affinity {
 public:
  // The score of `task` (of a job whose plan shard has `stage`) for a worker that caches
  // `has`: one point per input it has; owning the stage outranks any number of those.
  int score(const shardpress::v1::TaskRecord& task, int stage, const std::vector<shardpress::v1::TensorMeta>& inputs,
            const std::set<std::string>& has, const std::string& worker_id) const;
  // A calibration task of `stage` was leased to `worker_id`: the stage is its from now on.
  void leased(const shardpress::v1::TaskRecord& task, int stage, const std::string& worker_id);
  void forget_job(const std::string& job_id);

 private:
  static constexpr int kStageOwner = 1'000'000;  // more than any task's input count
  std::map<std::pair<std::string, int>, std::string> stage_owner_;  // (job, stage) -> worker
};

}  // namespace sp
