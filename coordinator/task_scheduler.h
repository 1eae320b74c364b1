// Leases: which worker runs which task, until when, with which attempt number.
//
// Pure in-memory logic over TaskRecords with an injected Clock. It *proposes*: every
// method that changes a task returns the changed records (copies) and leaves its own
// state alone; the caller persists them in one synced batch and only then applies them
// with upsert(). So a failed commit leaves the scheduler as a restart would find it. The
// one exception is extend(): lease extensions live in memory only (after a restart every
// lease gets a fresh TTL anyway).
//
// Every result names the attempt it was leased under (the fencing token): a result from
// an attempt that has expired or been superseded is refused with ABORTED.
//
// Thread-safety: not thread-safe; the coordinator calls it under its mutex.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "coordinator/clock.h"
#include "shardpress.pb.h"

namespace sp {

struct SchedulerOptions {
  int64_t lease_ttl_ms = 30'000;
  uint32_t max_failures = 3;  // a task that fails this many times fails its job
  uint32_t max_leases_per_worker = 4;  // a worker (or an impostor) cannot hoard the queue
};

class TaskScheduler {
 public:
  TaskScheduler(const Clock& clock, SchedulerOptions options) : clock_(clock), options_(options) {}

  const SchedulerOptions& options() const { return options_; }

  // Applies records (new or changed), e.g. after their batch was committed.
  void upsert(const shardpress::v1::TaskRecord& t);
  void upsert(const std::vector<shardpress::v1::TaskRecord>& tasks);
  void remove_job(const std::string& job_id);

  const shardpress::v1::TaskRecord* find(const std::string& task_id) const;
  // A job's tasks in plan order (shard, then forward tasks before the layer's).
  std::vector<const shardpress::v1::TaskRecord*> tasks_of(const std::string& job_id) const;

  // What the caller knows about tasks that the scheduler does not: whether one may run
  // now (its job running, its inputs imported), its memory, and a worker's affinity to it.
  struct LeaseQuery {
    std::function<bool(const shardpress::v1::TaskRecord&)> leasable;
    std::function<uint64_t(const shardpress::v1::TaskRecord&)> memory_of;
    std::function<int(const shardpress::v1::TaskRecord&)> affinity;
  };
  // The best READY, leasable task whose memory fits `free_memory`, as leased to
  // `worker_id`: the highest affinity, then the oldest job, then plan order. nullopt if
  // none fits or the worker holds its quota.
  std::optional<shardpress::v1::TaskRecord> choose_lease(const std::string& worker_id, uint64_t free_memory,
                                                         const LeaseQuery& q) const;

  // Extends a held lease (in memory only). ABORTED if the worker no longer holds it.
  absl::Status extend(const std::string& worker_id, const std::string& task_id, uint32_t attempt);

  // The task as DONE with these outputs. ABORTED for a stale attempt or a task not leased
  // to this worker.
  absl::StatusOr<shardpress::v1::TaskRecord> completion(const std::string& worker_id, const std::string& task_id,
                                                        uint32_t attempt,
                                                        const std::vector<shardpress::v1::OutputGroup>& outputs,
                                                        const std::vector<shardpress::v1::PruneReport>& reports) const;

  struct FailOutcome {
    shardpress::v1::TaskRecord task;
    bool exhausted = false;  // failed max_failures times: the job fails
  };
  absl::StatusOr<FailOutcome> failure(const std::string& worker_id, const std::string& task_id, uint32_t attempt,
                                      const std::string& error) const;

  // Leases whose deadline passed, back to READY (the attempt number stays; the next lease
  // bumps it), each with last_error naming the worker.
  std::vector<shardpress::v1::TaskRecord> expired_leases() const;
  // Every lease a worker holds, back to READY (it restarted).
  std::vector<shardpress::v1::TaskRecord> leases_released(const std::string& worker_id) const;
  // After a restart: every lease with a fresh TTL from now, so live workers can resume
  // heartbeating; the ones that died with the coordinator expire normally.
  std::vector<shardpress::v1::TaskRecord> fresh_leases() const;
  // A job's unfinished tasks back to READY, or WAITING while a dependency is not DONE
  // (resume after cancel or failure).
  std::vector<shardpress::v1::TaskRecord> unfinished_reset(const std::string& job_id) const;
  // WAITING tasks of a job that may run once `done` is DONE (its dependencies all done).
  std::vector<shardpress::v1::TaskRecord> promotions(const std::string& job_id,
                                                     const shardpress::v1::TaskRecord& done) const;
  // Activations kept on a worker (TaskPlan.keeps_activations) that are `lost` (the worker
  // is gone): their producers, DONE, back to READY and the tasks that wait for them to
  // WAITING, back along the chain as far as the loss reaches — a producer whose readers
  // are all DONE needs nothing, and one with a reader still LEASED waits for that lease
  // to end. Each producer's last_error says why it runs again (`why` they are lost).
  // `pending`: records as a change not applied yet leaves them (returned too, as rewound).
  std::vector<shardpress::v1::TaskRecord> rewound(
      const std::string& job_id, const shardpress::v1::JobPlan& plan,
      const std::function<bool(const shardpress::v1::TaskRecord& producer)>& lost, const std::string& why,
      const std::vector<shardpress::v1::TaskRecord>& pending = {}) const;
  bool dependencies_done(const shardpress::v1::TaskRecord& t) const;
  // The tasks of `plan` that read only shards 0..`shard` and do not exist yet, as an
  // import that has reached `shard` creates them: READY when their dependencies are
  // done (or they have none), else WAITING.
  std::vector<shardpress::v1::TaskRecord> created_by_import(const std::string& job_id,
                                                            const shardpress::v1::JobPlan& plan, int shard) const;

 private:
  absl::StatusOr<const shardpress::v1::TaskRecord*> held(const std::string& worker_id, const std::string& task_id,
                                                         uint32_t attempt) const;
  const Clock& clock_;
  SchedulerOptions options_;
  std::map<std::string, shardpress::v1::TaskRecord> tasks_;  // by id (sorted: job, then task)
};

}  // namespace sp
