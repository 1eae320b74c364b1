// The coordinator's core, as plain C++ (no gRPC, no sockets): the composition root that
// owns the state store, the blob store and one manager per domain, declared in dependency
// order, and wires their reactions in one place:
//
//   task done      -> its dependents become ready, the blobs only it still needed go
//   task failed N  -> the job fails with its error
//   job finished   -> it keeps only the blobs a resume or re-assembly needs
//   job deleted    -> its records and every blob it alone owned go
//   worker silent  -> announced in the events of the jobs whose tasks it holds; its leases
//                     expire; after --forget-workers-after it is forgotten
//
// Every mutation follows one order (commit()): validate, commit one batch (synced), apply
// to memory, reply. A commit that fails leaves memory as it was — what a restart would load
// — and is returned to the caller and logged, never ignored. Mutating calls that workers
// retry (complete, fail of the same attempt) are idempotent.
//
// Managers: jobs (coordinator/job_registry), workers (worker_registry), leases
// (task_scheduler + affinity), import (importer), assembly (job_assembly), views
// (status_view), blob lifecycle (blob_owners + blob_store). The class is defined in four
// files: coordinator.cc (open, recovery, the commit path, state views),
// coordinator_cli_api.cc, coordinator_worker_api.cc (with the timers) and job_runner.cc.
//
// Thread-safety: all public methods are thread-safe (one mutex; blob streaming and the
// heavy import/assembly work run outside it).
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "coordinator/affinity.h"
#include "coordinator/blob_store.h"
#include "coordinator/change.h"
#include "coordinator/clock.h"
#include "coordinator/importer.h"
#include "coordinator/job_assembly.h"
#include "coordinator/job_registry.h"
#include "coordinator/state_store.h"
#include "coordinator/status_view.h"
#include "coordinator/task_scheduler.h"
#include "coordinator/worker_registry.h"
#include "shardpress.pb.h"

namespace sp {

// Test hooks: slow phases down, make a disk fill up (passed by tests through the daemon's
// hidden --test-* flags, never read from the environment).
struct CoordinatorTestHooks {
  int64_t import_delay_ms = 0;    // after each imported tensor
  int64_t assemble_delay_ms = 0;  // after each assembled tensor; also: nothing written before the job's tasks are
                                  // all done (so that a test can stop the coordinator in the middle of its assembly)
  uint64_t fail_output_writes_after_bytes = 0;  // assembly's writes fail with ENOSPC after this many
};

struct CoordinatorOptions {
  std::string data_dir;
  std::string model_root = "/";   // job models must resolve inside
  std::string output_root = "/";  // job outputs must resolve inside
  int64_t lease_ttl_ms = 30'000;
  int64_t heartbeat_interval_ms = 3'000;
  uint32_t max_failures = 3;
  uint64_t max_shard_bytes = 5'000'000'000ull;  // output safetensors files
  // Free space the state store keeps on the data dir's filesystem (see RocksStateStore).
  uint64_t min_free_bytes = 512ull << 20;
  // A worker not seen for this long (and holding no lease) is forgotten: dropped from
  // `workers` and the state. 0: never.
  int64_t forget_workers_after_ms = 3'600'000;
  // A finished job (succeeded, failed or cancelled) is deleted this long after it ended,
  // with all it owns. 0: kept until `shardpress delete`.
  int64_t retention_ms = 0;
  // Imports keep a copy of each model in the data dir instead of references into its files
  // (for model folders that may change or go away while their jobs run).
  bool copy_models = false;
  // A blob uploaded for a result that never came (the task failed or lost its lease) is
  // deleted once it is this old and still owned by nobody.
  int64_t unowned_blob_grace_ms = 600'000;
  // Where the coordinator's log lines go (the daemon: stderr); empty: nowhere.
  std::function<void(const std::string&)> log;
  // The state store to use instead of RocksDB in data_dir (tests: MemoryStateStore).
  std::shared_ptr<StateStore> store;
  CoordinatorTestHooks test;
};

class Coordinator {
 public:
  // Opens the state and recovers every job, task and worker before returning (call
  // start() to begin running jobs).
  static absl::StatusOr<std::unique_ptr<Coordinator>> open(CoordinatorOptions options, const Clock& clock);
  ~Coordinator();

  // Starts / stops the thread that imports, assembles and expires jobs.
  void start();
  void stop();
  // One step of that thread: give deleted blobs' space back, or start, import, assemble
  // or finish the next job. Tests without the thread call it themselves.
  void step();

  // CLI API.
  absl::StatusOr<shardpress::v1::JobStatus> submit(const shardpress::v1::JobSpec& spec);
  absl::StatusOr<shardpress::v1::JobStatus> job_status(const std::string& ref, bool with_tasks = true);
  std::vector<shardpress::v1::JobStatus> list_jobs();
  absl::StatusOr<shardpress::v1::JobStatus> cancel(const std::string& ref);
  absl::StatusOr<shardpress::v1::JobStatus> resume(const std::string& ref);
  // Deletes a finished or cancelled job: its record, tasks and events, and every blob
  // only it owned, in one batch (then the store reclaims the space). Its id is never given
  // out again. FAILED_PRECONDITION for a job that is still queued or running.
  absl::StatusOr<shardpress::v1::JobStatus> delete_job(const std::string& ref);
  // The spec as submit() stores it: validated, defaults kept, paths resolved inside the
  // roots (model, output, calibration/evaluation ids). Idempotent; reads no model.
  absl::StatusOr<shardpress::v1::JobSpec> normalize_spec(const shardpress::v1::JobSpec& spec) const;
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

  // Expires leases whose deadline passed, announces silent workers, forgets old ones,
  // deletes unowned uploads past their grace and jobs past their retention (a timer
  // calls it).
  void expire_leases();

  // One line to the log (options.log), if there is one.
  void log(const std::string& line) const;

  BlobStore& blobs() { return *blobs_; }
  CoordinatorMetrics& metrics() { return metrics_; }
  // Prometheus text exposition of task counts, bytes moved, blobs and worker liveness.
  std::string metrics_text();
  // The records a restart would load, as text (jobs, tasks, workers, blob owners): tests
  // compare it with what memory holds after a failed commit.
  std::string durable_state() const;
  // The same records as memory holds them.
  std::string memory_state() const;

 private:
  Coordinator(CoordinatorOptions options, const Clock& clock);
  absl::Status recover();
  void run_loop();

  // Commits `c` (synced); on success applies it to memory and logs its events; on failure
  // logs that they were not recorded and changes nothing. Requires mu_.
  absl::Status commit(Change& c);
  // An event of `job_id` in `c` (its log line follows the commit).
  void add_event(Change& c, const std::string& job_id, const std::string& msg);
  // `after` replaces a job and some of its tasks: their records, the blob owners the
  // change implies, and the memory updates, into `c`. Requires mu_.
  absl::Status stage(Change& c, const shardpress::v1::JobRecord& after,
                     const std::vector<shardpress::v1::TaskRecord>& tasks);
  // A job's tasks as they will be after `changed` replaces some of them. Requires mu_.
  std::vector<const shardpress::v1::TaskRecord*> tasks_after(
      const std::string& job_id, const std::vector<shardpress::v1::TaskRecord>& changed) const;
  // `j` with state, error and finish time set (and deactivated), into `c`. Requires mu_.
  absl::Status finish(Change& c, shardpress::v1::JobRecord j, shardpress::v1::JobState state,
                      const std::string& error);
  // Deletes a terminal job (and what it alone owns) into `c`. Requires mu_.
  absl::Status stage_delete(Change& c, const shardpress::v1::JobRecord& j);
  void watch_workers_locked();
  // Activations kept on workers that are lost: their producers run again (TaskScheduler::rewound).
  void rewind_lost_locked();
  // An event per task `rewound` changed (but `skip`): why a producer runs again, or that a reader waits.
  void add_rewind_events(Change& c, const std::string& job_id, const std::vector<shardpress::v1::TaskRecord>& rewound,
                         const std::string& skip);
  void sweep_unowned_locked();
  void expire_retained_locked();

  struct Prepared {
    shardpress::v1::JobSpec spec;  // normalized
    std::string model_root;        // the root the model lies in
  };
  absl::StatusOr<Prepared> prepare(const shardpress::v1::JobSpec& spec) const;
  // The job's status as the CLI shows it (with its runner phase). Requires mu_.
  shardpress::v1::JobStatus view_locked(const shardpress::v1::JobRecord& j, bool with_tasks) const;
  absl::StatusOr<std::string> readable_root(const shardpress::v1::JobRecord& j) const;

  // For the runner's phases: whether job `id` is still in `state` (and the coordinator not
  // stopping), and a setter of its progress text. Each takes mu_ when called.
  std::function<bool()> still_in(const std::string& id, shardpress::v1::JobState state);
  std::function<void(const std::string&)> phase_of(const std::string& id);
  // The runner's two phases, outside the lock.
  absl::Status run_import(const shardpress::v1::JobRecord& j);
  absl::Status commit_import(const shardpress::v1::JobRecord& imported, int shard, bool last, size_t reused);
  // Every imported tensor's digest by its source (file, offset, size, mtime), from the
  // records of the jobs that still exist (import_job's known_digests). Requires mu_.
  KnownDigests known_digests_locked() const;
  absl::Status run_assembly(const shardpress::v1::JobRecord& j);
  // While a job runs: its DONE results into its output (OutputStream), so that assembly at
  // the end has little left to write. A stream that fails is dropped; the end writes all.
  void stream_output(const shardpress::v1::JobRecord& j, const TaskOutputs& outputs);
  AssemblyHooks assembly_hooks(const std::string& job_id, shardpress::v1::JobState state);

  // spec.evaluate (job_evaluation.cc). Once `parent`'s output is written: it becomes
  // EVALUATING with an evaluation job of its output and one of the original model (unless
  // an earlier one with `cache_key` is cached), in `c`. Requires mu_.
  struct EvaluationKeys {
    std::string perplexity, choices;  // "" when it cannot be made (or is not asked for)
  };
  absl::Status stage_evaluation(Change& c, shardpress::v1::JobRecord parent, const EvaluationKeys& keys);
  // Ends every EVALUATING job whose evaluation jobs have ended: SUCCEEDED within its gate,
  // FAILED over it (both numbers in the error, the report beside the output) or when an
  // evaluation job failed. Requires mu_.
  void settle_evaluations_locked();
  // The evaluation jobs of `parent` that still exist (a resumed evaluation replaces them).
  std::vector<const shardpress::v1::JobRecord*> evaluation_jobs_locked(const std::string& parent_id) const;
  // What the status shows of a job's evaluation (its jobs' results as far as known).
  shardpress::v1::Evaluation evaluation_view_locked(const shardpress::v1::JobRecord& j) const;
  // The keys the original model's evaluations are cached under (reads the token files).
  EvaluationKeys evaluation_cache_keys(const shardpress::v1::JobRecord& j) const;

  // Dense calibration statistics shared between jobs (lease_statistics.cc; the rule:
  // shared_statistics.h). The key of a task ("" if it has none); which statistics a task
  // being leased takes or returns (its record's fields set, events into `c`); the tensor
  // it takes; the float32 values of a layer's statistics. Each requires mu_.
  std::string statistics_key_locked(const shardpress::v1::JobRecord& j, const shardpress::v1::TaskRecord& t) const;
  void share_statistics_locked(Change& c, const shardpress::v1::JobRecord& j, shardpress::v1::TaskRecord& t);
  const shardpress::v1::TensorMeta* statistics_source_locked(const shardpress::v1::TaskRecord& t) const;
  int64_t statistics_values_locked(const shardpress::v1::JobRecord& j) const;

  shardpress::v1::LeaseResponse lease_response(const shardpress::v1::JobRecord& j,
                                               const shardpress::v1::TaskRecord& t) const;
  std::vector<shardpress::v1::TensorMeta> task_inputs(const shardpress::v1::JobRecord& j,
                                                       const shardpress::v1::TaskRecord& t) const;

  CoordinatorOptions options_;
  const Clock& clock_;
  std::shared_ptr<StateStore> store_;
  std::unique_ptr<BlobStore> blobs_;
  JobRegistry jobs_;
  WorkerRegistry workers_;
  TaskScheduler scheduler_;
  Affinity affinity_;
  CoordinatorMetrics metrics_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::string> phase_;  // job id -> "importing 3/9" (the runner's progress)
  std::map<std::string, int64_t> retry_at_;   // job id -> when the runner may try again
  // The runner's alone (no lock): outputs being written while their jobs run, and the
  // jobs whose stream failed (written at the end).
  std::map<std::string, std::unique_ptr<OutputStream>> streams_;
  std::set<std::string> unstreamed_;
  uint64_t event_counter_ = 0;
  // Bytes of blobs deleted since the store last reclaimed space (the runner reclaims once
  // they are half the live bytes); garbage_checked_: the amount it last compared.
  uint64_t garbage_bytes_ = 0;
  uint64_t garbage_checked_ = 0;
  bool stopping_ = false;
  std::thread runner_;
};

}  // namespace sp
