// What `status`, `list`, `workers` and /metrics show, computed from the coordinator's
// records (read-only): progress, tasks, why nothing runs, an evaluation's result, and
// the Prometheus text.
#pragma once

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "coordinator/worker_registry.h"
#include "shardpress.pb.h"

namespace sp {

struct CoordinatorMetrics {
  std::atomic<uint64_t> blob_bytes_in{0};
  std::atomic<uint64_t> blob_bytes_out{0};
  std::atomic<uint64_t> leases{0};
  std::atomic<uint64_t> stale_results{0};
  std::atomic<uint64_t> auth_failures{0};
  std::atomic<uint64_t> blobs_deleted{0};
  std::atomic<uint64_t> tasks_completed{0};
};

// A job's status. `phase`: what the runner says it is doing ("importing 3/9"), if anything.
shardpress::v1::JobStatus job_status_view(const shardpress::v1::JobRecord& j,
                                          const std::vector<const shardpress::v1::TaskRecord*>& tasks,
                                          const std::string& phase, const WorkerRegistry& workers, int64_t now_ms,
                                          bool with_tasks);

shardpress::v1::WorkerInfo worker_view(const WorkerRegistry::Worker& w, bool alive,
                                       const std::vector<std::string>& leased_tasks);

struct MetricsInput {
  std::map<std::string, int> tasks_by_state, jobs_by_state;
  int workers_alive = 0, workers_known = 0;
  size_t blobs = 0;
  uint64_t blob_bytes = 0;
  size_t intermediate_blobs = 0;  // activations kept for tasks that have not read them yet
  struct WorkerUp {
    std::string id, host;
    bool alive = false;
  };
  std::vector<WorkerUp> workers;
  struct JobTime {
    std::string id, name, state;
    double seconds = 0;  // started to finished (or to now while it runs)
  };
  std::vector<JobTime> jobs;  // those that have started
};
// Prometheus text exposition.
std::string metrics_text(const MetricsInput& in, const CoordinatorMetrics& counters);
std::string task_state_word(shardpress::v1::TaskState s);

}  // namespace sp
