// The coordinator's core, as plain C++ (no gRPC): the composition root that owns the
// state store, the blob store, the task scheduler, the jobs and the worker registry,
// and wires their reactions (task done -> job assembling, task failed N times -> job
// failed, worker silent -> leases released). gRPC handlers and `shardpress local` call
// these methods.
//
// Every mutating call persists its change in one synced batch before returning, and is
// idempotent where workers retry (complete/fail of the same attempt).
// Thread-safety: all public methods are thread-safe (one mutex; blob streaming and the
// heavy import/assemble work run outside it).
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "coordinator/blob_store.h"
#include "coordinator/clock.h"
#include "coordinator/state_store.h"
#include "coordinator/task_scheduler.h"
#include "shardpress.pb.h"

namespace sp {

struct CoordinatorOptions {
  std::string data_dir;
  std::string model_root = "/";   // job models must resolve inside
  std::string output_root = "/";  // job outputs must resolve inside
  int64_t lease_ttl_ms = 30'000;
  int64_t heartbeat_interval_ms = 3'000;
  uint32_t max_failures = 3;
  uint64_t max_shard_bytes = 5'000'000'000ull;  // output safetensors files
  // Free space the state store keeps on the data dir's filesystem (see StateStore::open).
  uint64_t min_free_bytes = 512ull << 20;
  // A worker not seen for this long (and holding no lease) is forgotten: dropped from
  // `workers` and the state. 0: never.
  int64_t forget_workers_after_ms = 3'600'000;
  // Where the coordinator's log lines go (the daemon: stderr); empty: nowhere.
  std::function<void(const std::string&)> log;
};

struct CoordinatorMetrics {
  std::atomic<uint64_t> blob_bytes_in{0};
  std::atomic<uint64_t> blob_bytes_out{0};
  std::atomic<uint64_t> leases{0};
  std::atomic<uint64_t> stale_results{0};
  std::atomic<uint64_t> auth_failures{0};
};

class Coordinator {
 public:
  // Opens the state in options.data_dir and recovers every job, task and worker before
  // returning (call start() to begin running jobs).
  static absl::StatusOr<std::unique_ptr<Coordinator>> open(CoordinatorOptions options, const Clock& clock);
  ~Coordinator();

  // Starts / stops the thread that imports, plans and assembles jobs.
  void start();
  void stop();

  // CLI API.
  absl::StatusOr<shardpress::v1::JobStatus> submit(const shardpress::v1::JobSpec& spec);
  absl::StatusOr<shardpress::v1::JobStatus> job_status(const std::string& ref, bool with_tasks = true);
  std::vector<shardpress::v1::JobStatus> list_jobs();
  absl::StatusOr<shardpress::v1::JobStatus> cancel(const std::string& ref);
  absl::StatusOr<shardpress::v1::JobStatus> resume(const std::string& ref);
  // The spec as submit() stores it: validated, defaults kept, paths resolved inside the
  // roots (model, output, calibration/evaluation ids). Idempotent; reads no model.
  absl::StatusOr<shardpress::v1::JobSpec> normalize_spec(const shardpress::v1::JobSpec& spec) const;
  // Forgets a finished (or cancelled) job: its record, tasks and events, in one batch.
  // Its id is never given out again. Blobs stay (they have no owners yet).
  absl::Status remove_job(const std::string& ref);
  std::vector<shardpress::v1::WorkerInfo> workers();
  absl::StatusOr<std::vector<shardpress::v1::EventRecord>> events(const std::string& ref);

  // Worker API.
  absl::StatusOr<shardpress::v1::RegisterResponse> register_worker(const shardpress::v1::RegisterRequest& r);
  absl::StatusOr<shardpress::v1::HeartbeatResponse> heartbeat(const shardpress::v1::HeartbeatRequest& r);
  absl::StatusOr<shardpress::v1::LeaseResponse> lease(const shardpress::v1::LeaseRequest& r);
  absl::Status complete(const shardpress::v1::CompleteRequest& r);
  absl::Status fail(const shardpress::v1::FailRequest& r);
  // Notes that a worker fetched or uploaded a blob (scheduling affinity).
  void note_worker_has(const std::string& worker_id, const std::string& digest);

  // Expires leases whose deadline passed (called by a timer).
  void expire_leases();

  // One line to the log (options.log), if there is one.
  void log(const std::string& line) const;

  BlobStore& blobs() { return *blobs_; }
  CoordinatorMetrics& metrics() { return metrics_; }
  // Prometheus text exposition of task counts, bytes moved and worker liveness.
  std::string metrics_text();

 private:
  Coordinator(CoordinatorOptions options, const Clock& clock);
  absl::Status recover();
  void run_loop();
  void step();
  absl::Status import_job(const std::string& job_id);
  absl::Status assemble_job(const std::string& job_id);

  struct Prepared {
    shardpress::v1::JobSpec spec;  // normalized
    std::string model_root;        // the root the model lies in
  };
  absl::StatusOr<Prepared> prepare(const shardpress::v1::JobSpec& spec) const;

  // Helpers that require mu_.
  // The job with id `ref`, or the one named `ref` (NOT_FOUND; FAILED_PRECONDITION listing
  // the ids when several jobs share the name, as state from before names were unique may).
  absl::StatusOr<const shardpress::v1::JobRecord*> find_job_locked(const std::string& ref) const;
  shardpress::v1::JobStatus status_locked(const shardpress::v1::JobRecord& j, bool with_tasks) const;
  void put_job(StateStore::Batch& b, const shardpress::v1::JobRecord& j);
  void put_task(StateStore::Batch& b, const shardpress::v1::TaskRecord& t);
  // An event in `b`, and a log line once `b` is committed with commit_locked().
  void add_event(StateStore::Batch& b, const std::string& job_id, const std::string& msg);
  // Commits `b` (synced) and logs its events, or that they could not be recorded.
  absl::Status commit_locked(StateStore::Batch& b);
  absl::Status persist_tasks(const std::vector<shardpress::v1::TaskRecord>& tasks, const std::string& why);
  void finish_job_locked(StateStore::Batch& b, shardpress::v1::JobRecord& j, shardpress::v1::JobState state,
                         const std::string& error);
  bool job_active(const shardpress::v1::JobRecord& j) const;
  // The job exists and is in `state` (the runner checks this between pieces of work).
  bool in_state_locked(const std::string& job_id, shardpress::v1::JobState state) const;

  CoordinatorOptions options_;
  const Clock& clock_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<TaskScheduler> scheduler_;
  CoordinatorMetrics metrics_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, shardpress::v1::JobRecord> jobs_;
  struct WorkerState {
    shardpress::v1::WorkerRecord record;
    int64_t last_seen_ms = 0;
    bool gone = false;          // went silent (announced once); cleared when it is seen again
    std::set<std::string> has;  // digests it fetched or uploaded
  };
  // Requires mu_: announces workers that went silent (an event for each job whose tasks
  // they hold, a log line) and forgets those silent for options.forget_workers_after_ms.
  void watch_workers_locked();
  std::map<std::string, WorkerState> workers_;
  // Requires mu_: the registered worker, marked as seen now (FAILED_PRECONDITION if unknown).
  absl::StatusOr<WorkerState*> seen_locked(const std::string& worker_id);
  // Requires mu_: seen within a few heartbeat intervals.
  bool alive_locked(const WorkerState& w) const;
  std::map<std::string, std::string> phase_;  // job id -> "importing 3/9"
  std::map<std::string, std::string> stage_owner_;  // "job#stage" -> the worker that took it first
  std::vector<std::string> unlogged_;  // events of the batch being built, logged at commit
  int64_t started_ms_ = 0;
  uint64_t next_seq_ = 1;
  uint64_t event_counter_ = 0;
  bool stopping_ = false;
  std::thread runner_;
};

}  // namespace sp
