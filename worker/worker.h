// A worker: registers with the coordinator, heartbeats its leases, pulls tasks, fetches
// their input blobs into its disk cache (the next task's while it computes the current
// one), runs the ops, uploads the results and completes the task. A failed task is
// reported and the worker keeps serving; when the coordinator is unreachable it retries
// with backoff. stop() (SIGTERM) finishes the task in hand and stops leasing.
//
// Thread-safety: run() on one thread; stop() from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <vector>
#include <string>

#include "common/dir_lock.h"
#include "common/status.h"
#include "worker/blob_cache.h"
#include "proto/credentials.h"
#include "worker/coordinator_client.h"
#include "worker/task_inputs.h"

namespace sp {

struct WorkerOptions {
  std::string coordinator = "127.0.0.1:7070";
  std::string token;  // shared secret, when the coordinator requires one
  TlsClientFiles tls;  // TLS to the coordinator when tls.ca is set
  std::string cache_dir;
  uint64_t memory = 11ull << 30;  // budget for task estimates (host memory)
  uint64_t gpu_memory = UINT64_MAX;  // device memory GPU work may use (never more than is free)
  uint64_t cache_capacity = 64ull << 30;
  int threads = 1;
  std::string device = "cpu";  // label shown by `workers`
  int cuda_device = -1;          // >= 0: NF4 quantization of layer tasks runs on this CUDA device
  bool verbose = true;  // log every task to stderr (failures are always logged)
  // Read inputs straight from the source model when this machine sees the file (same
  // host or shared filesystem) and the bytes match the digest; else fetch the blob.
  bool direct_read = true;
  int64_t task_delay_ms = 0;  // test hook (--test-hooks task=MS): each task takes this much longer
};

struct WorkerStats {
  std::atomic<uint64_t> tasks_done{0};
  std::atomic<uint64_t> tasks_failed{0};
  std::atomic<uint64_t> bytes_fetched{0};
  std::atomic<uint64_t> bytes_uploaded{0};
  std::atomic<uint64_t> bytes_kept{0};  // activations kept in the cache instead of uploaded (checkpoint_every)
  std::atomic<uint64_t> corrupt_transfers{0};  // blobs damaged in transit, sent again
};

class Worker {
 public:
  // Claims the cache dir (FAILED_PRECONDITION naming the worker that has it), opens the
  // cache and loads (or creates) the persistent worker id in it.
  static absl::StatusOr<std::unique_ptr<Worker>> create(WorkerOptions options);

  // Serves until stop(). Returns OK after a clean stop.
  absl::Status run();
  // Ends run() after the task in hand (an idle wait ends at once).
  void stop();

  const std::string& id() const { return id_; }
  WorkerStats& stats() { return stats_; }

 private:
  struct Leased {
    shardpress::v1::LeaseResponse lease;
    absl::Status fetched;  // inputs in the cache (or readable at the source), or why not
  };
  Worker() = default;
  // Streams a blob into the cache, fetching it again when it arrives damaged.
  absl::Status fetch(const std::string& digest, uint64_t nbytes);
  template <typename F>
  auto with_retry(const char* what, F&& call) -> decltype(call());
  std::optional<Leased> lease_and_fetch(uint64_t free_memory);
  void execute(const Leased& t);
  absl::Status compute_and_upload(const shardpress::v1::LeaseResponse& lease,
                                  shardpress::v1::CompleteRequest* complete);
  // compute_and_upload, with anything thrown below it (an allocation that fails, a bug)
  // turned into the task's error: the worker reports it and keeps serving.
  absl::Status run_task(const shardpress::v1::LeaseResponse& lease, shardpress::v1::CompleteRequest* complete);
  void heartbeat_loop();
  void log(const std::string& msg) const;

  WorkerOptions options_;
  std::string id_;
  DirLock cache_dir_lock_;  // one worker per cache dir (it holds the worker's id)
  std::unique_ptr<BlobCache> cache_;
  std::unique_ptr<TaskInputs> inputs_;
  std::unique_ptr<CoordinatorClient> client_;
  WorkerStats stats_;
  std::atomic<bool> stopping_{false};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;  // wakes the idle wait when stop() is called
  std::atomic<bool> heartbeat_stop_{false};  // after the last task, not at stop()
  std::atomic<int64_t> heartbeat_ms_{3000};
  std::mutex leases_mu_;
  std::set<std::pair<std::string, uint32_t>> held_;  // (task, attempt)
  std::set<std::pair<std::string, uint32_t>> revoked_;
};

}  // namespace sp
