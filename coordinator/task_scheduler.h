// Leases: which worker runs which task, until when, with which attempt number.
//
// Pure in-memory logic over TaskRecords with an injected Clock; the caller persists the
// records it gets back (one synced batch) before replying to the worker. Every result
// names the attempt it was leased under (the fencing token): a result from an attempt
// that has expired or been superseded is refused with ABORTED.
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

  // Adds (or replaces) a task, e.g. when a job is planned or state is recovered.
  void upsert(const shardpress::v1::TaskRecord& t);
  void remove_job(const std::string& job_id);
  // Only tasks of active jobs are leased.
  void set_job_active(const std::string& job_id, bool active);

  const shardpress::v1::TaskRecord* find(const std::string& task_id) const;
  std::vector<const shardpress::v1::TaskRecord*> tasks_of(const std::string& job_id) const;

  // After a restart: every lease gets a fresh TTL from now, so live workers can resume
  // heartbeating; the ones that died with the coordinator expire normally.
  std::vector<shardpress::v1::TaskRecord> extend_all_leases();

  // Leases the best READY task of an active job whose memory estimate fits
  // `free_memory`: the highest `affinity` (inputs the worker already caches), then the
  // oldest job, then the lowest layer. nullopt if none fits.
  std::optional<shardpress::v1::TaskRecord> lease(
      const std::string& worker_id, uint64_t free_memory,
      const std::function<uint64_t(const shardpress::v1::TaskRecord&)>& memory_of,
      const std::function<int(const shardpress::v1::TaskRecord&)>& affinity);

  // Extends a held lease. ABORTED if the worker no longer holds that attempt.
  absl::StatusOr<shardpress::v1::TaskRecord> heartbeat(const std::string& worker_id, const std::string& task_id,
                                                       uint32_t attempt);

  // Records a result. ABORTED for a stale attempt or a task not leased to this worker.
  absl::StatusOr<shardpress::v1::TaskRecord> complete(const std::string& worker_id, const std::string& task_id,
                                                      uint32_t attempt,
                                                      const std::vector<shardpress::v1::OutputGroup>& outputs,
                                                      const std::vector<shardpress::v1::PruneReport>& reports);

  struct FailOutcome {
    shardpress::v1::TaskRecord task;
    bool exhausted = false;  // failed max_failures times: the job fails
  };
  absl::StatusOr<FailOutcome> fail(const std::string& worker_id, const std::string& task_id, uint32_t attempt,
                                   const std::string& error);

  // Returns expired leases to READY (the attempt number stays; the next lease bumps it).
  std::vector<shardpress::v1::TaskRecord> expire();

  // Drops every lease a worker holds (it was declared dead); tasks go back to READY.
  std::vector<shardpress::v1::TaskRecord> release_worker(const std::string& worker_id);

  // Puts non-DONE tasks of a job back to READY, or WAITING while a dependency is not
  // DONE (resume after cancel/failure).
  std::vector<shardpress::v1::TaskRecord> reset_unfinished(const std::string& job_id);

  // WAITING tasks of a job whose dependencies are all DONE become READY; returns them.
  std::vector<shardpress::v1::TaskRecord> promote(const std::string& job_id);
  bool dependencies_done(const shardpress::v1::TaskRecord& t) const;

 private:
  absl::StatusOr<shardpress::v1::TaskRecord*> held(const std::string& worker_id, const std::string& task_id,
                                                   uint32_t attempt);
  const Clock& clock_;
  SchedulerOptions options_;
  std::map<std::string, shardpress::v1::TaskRecord> tasks_;  // by id (sorted: job, then task)
  std::set<std::string> active_jobs_;
};

}  // namespace sp
