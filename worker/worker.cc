#include "worker/worker.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <thread>

#include "common/byte_size.h"
#include "common/digest.h"
#include "common/file_util.h"
#include "jobs/job_settings.h"
#include "fmt/format.h"
#include "ops/compress_shard.h"
#include "ops/linalg.h"
#include "jobs/job_plan.h"
#include "worker/calibration_task.h"
#include "worker/task_compute.h"
#include "worker/device.h"

namespace sp {

namespace fs = std::filesystem;
using namespace shardpress::v1;  // NOLINT

namespace {

void sleep_ms(int64_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

constexpr int kMaxCorruptRetries = 5;

bool retryable(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsResourceExhausted(s) ||
         absl::IsInternal(s) || absl::IsUnknown(s);
}

absl::StatusOr<std::string> load_or_create_id(const std::string& cache_dir) {
  const std::string path = (fs::path(cache_dir) / "worker.id").string();
  auto existing = read_file(path);
  if (existing.ok()) {
    std::string id = *existing;
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    if (!id.empty()) return id;
  }
  std::random_device rd;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string id = fmt::format("{}-{:08x}", host, rd());
  SP_RETURN_IF_ERROR(write_file_atomic(path, id + "\n"));
  return id;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Worker>> Worker::create(WorkerOptions options) {
  std::unique_ptr<Worker> w(new Worker());
  w->options_ = std::move(options);
  auto lock = DirLock::acquire(w->options_.cache_dir, "shardpress-worker");
  if (!lock.ok()) return annotate(lock.status(), "cache dir");
  w->cache_dir_lock_ = std::move(*lock);
  SP_ASSIGN_OR_RETURN(w->cache_, BlobCache::open((fs::path(w->options_.cache_dir) / "blobs").string(),
                                                 w->options_.cache_capacity));
  SP_ASSIGN_OR_RETURN(w->id_, load_or_create_id(w->options_.cache_dir));
  SP_ASSIGN_OR_RETURN(auto credentials, channel_credentials(w->options_.tls));
  w->client_ = std::make_unique<CoordinatorClient>(w->options_.coordinator, w->options_.token, credentials);
  Worker* self = w.get();
  w->inputs_ = std::make_unique<TaskInputs>(
      w->cache_.get(), [self](const std::string& digest, uint64_t nbytes) { return self->fetch(digest, nbytes); }, w->options_.direct_read);
  // One OpenBLAS thread whatever --threads says: its threading changes the last bits of
  // products and factorisations, and a task's bytes must not depend on where it ran.
  set_blas_threads(1);
  return w;
}

void Worker::log(const std::string& msg) const {
  if (options_.verbose) std::fprintf(stderr, "worker %s: %s\n", id_.c_str(), msg.c_str());
}

// Retries `call` while the coordinator is unreachable (backoff 100 ms .. 5 s) until it
// answers or the worker stops.
template <typename F>
auto Worker::with_retry(const char* what, F&& call) -> decltype(call()) {
  int64_t backoff = 100;
  bool warned = false;
  while (true) {
    auto r = call();
    absl::Status st;
    if constexpr (std::is_same_v<decltype(r), absl::Status>) st = r;
    else st = r.status();
    if (!retryable(st) || stopping_) return r;
    if (!warned) {
      log(fmt::format("{}: {} (retrying)", what, std::string(st.message())));
      warned = true;
    }
    sleep_ms(backoff);
    backoff = std::min<int64_t>(backoff * 2, 5000);
  }
}

absl::Status Worker::run() {
  RegisterRequest reg;
  reg.set_worker_id(id_);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  reg.set_host(host);
  reg.set_device(options_.device);
  reg.set_memory(options_.memory);
  reg.set_threads(options_.threads);
  auto registered = with_retry("register", [&] { return client_->register_worker(reg); });
  if (!registered.ok()) return registered.status();
  heartbeat_ms_ = registered->heartbeat_interval_ms();
  log(fmt::format("registered with {} ({}, {} budget)", options_.coordinator, options_.device,
                  format_bytes(options_.memory)));
  std::thread hb([this] { heartbeat_loop(); });

  std::optional<Leased> current;
  while (!stopping_) {
    if (!current) current = lease_and_fetch(options_.memory);
    if (!current) {  // nothing to do: poll again in 200 ms, or stop now
      std::unique_lock lock(stop_mu_);
      stop_cv_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stopping_.load(); });
      continue;
    }
    // Lease and fetch the next task while this one computes (if both fit in memory).
    const uint64_t in_use = current->lease.memory_estimate();
    std::future<std::optional<Leased>> next;
    if (!stopping_ && in_use < options_.memory)
      next = std::async(std::launch::async, [this, free = options_.memory - in_use] { return lease_and_fetch(free); });
    execute(*current);
    current.reset();
    if (next.valid()) current = next.get();
  }
  // A prefetched task not started is left to expire; the coordinator re-leases it.
  heartbeat_stop_ = true;
  hb.join();
  log("stopped");
  return absl::OkStatus();
}

void Worker::stop() {
  {
    std::lock_guard lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
}

std::optional<Worker::Leased> Worker::lease_and_fetch(uint64_t free_memory) {
  LeaseRequest req;
  req.set_worker_id(id_);
  req.set_free_memory(free_memory);
  auto lease = with_retry("lease", [&] { return client_->lease(req); });
  if (!lease.ok()) {
    if (absl::IsFailedPrecondition(lease.status())) {  // coordinator lost us: register again
      RegisterRequest reg;
      reg.set_worker_id(id_);
      reg.set_device(options_.device);
      reg.set_memory(options_.memory);
      reg.set_threads(options_.threads);
      client_->register_worker(reg).IgnoreError();
    } else if (!stopping_) {
      log(fmt::format("lease: {}", std::string(lease.status().message())));
    }
    return std::nullopt;
  }
  if (!lease->has_task()) return std::nullopt;
  {
    std::lock_guard lock(leases_mu_);
    held_.insert({lease->task_id(), lease->attempt()});
  }
  Leased t{*lease, absl::OkStatus()};
  for (const auto& in : lease->inputs()) {
    t.fetched = inputs_->prefetch(in);
    if (!t.fetched.ok()) break;
  }
  return t;
}

absl::Status Worker::fetch(const std::string& digest, uint64_t nbytes) {
  absl::Status st;
  // Bytes damaged on the way (DATA_LOSS: the digest did not match) are fetched again.
  for (int tries = 0; tries < kMaxCorruptRetries; ++tries) {
    st = with_retry("fetch", [&] { return client_->fetch(digest, id_, *cache_); });
    if (!absl::IsDataLoss(st)) break;
    stats_.corrupt_transfers++;
    log(fmt::format("fetch {}: {} (fetching again)", digest, std::string(st.message())));
  }
  if (st.ok()) stats_.bytes_fetched += nbytes;
  return st;
}

void Worker::execute(const Leased& t) {
  const LeaseResponse& lease = t.lease;
  const auto t0 = std::chrono::steady_clock::now();
  CompleteRequest done;
  done.set_worker_id(id_);
  done.set_task_id(lease.task_id());
  done.set_attempt(lease.attempt());
  absl::Status st = t.fetched.ok() ? run_task(lease, &done) : t.fetched;
  bool revoked;
  {
    std::lock_guard lock(leases_mu_);
    revoked = revoked_.count({lease.task_id(), lease.attempt()}) > 0;
  }
  if (revoked) {
    log(fmt::format("{}: lease revoked, result dropped", lease.task_id()));
  } else if (st.ok()) {
    auto c = with_retry("complete", [&] { return client_->complete(done); });
    if (c.ok()) {
      stats_.tasks_done++;
      log(fmt::format("{} done in {:.2f} s", lease.task_id(),
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()));
    } else {
      log(fmt::format("{}: result refused: {}", lease.task_id(), std::string(c.message())));
    }
  } else {
    stats_.tasks_failed++;
    std::fprintf(stderr, "worker %s: %s failed: %s\n", id_.c_str(), lease.task_id().c_str(), std::string(st.message()).c_str());
    FailRequest f;
    f.set_worker_id(id_);
    f.set_task_id(lease.task_id());
    f.set_attempt(lease.attempt());
    f.set_error(std::string(st.message()));
    with_retry("fail", [&] { return client_->fail(f); }).IgnoreError();
  }
  std::lock_guard lock(leases_mu_);
  held_.erase({lease.task_id(), lease.attempt()});
  revoked_.erase({lease.task_id(), lease.attempt()});
}

absl::Status Worker::run_task(const LeaseResponse& lease, CompleteRequest* complete) {
  try {
    return compute_and_upload(lease, complete);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory while running the task (lower --memory or free some)");
  } catch (const std::exception& e) {
    return absl::InternalError(fmt::format("internal error while running the task: {}", e.what()));
  } catch (...) {
    return absl::InternalError("internal error while running the task (unknown exception)");
  }
}

absl::Status Worker::compute_and_upload(const LeaseResponse& lease, CompleteRequest* complete) {
  std::vector<TaskInputs::Bytes> held;  // keeps the mappings alive while the task runs
  std::vector<std::span<const uint8_t>> bytes;
  for (const auto& in : lease.inputs()) {
    SP_ASSIGN_OR_RETURN(TaskInputs::Bytes input, inputs_->read(in));
    bytes.push_back(input.bytes);
    held.push_back(std::move(input));
  }
  SP_ASSIGN_OR_RETURN(const TaskOutcome outcome,
                      compute_task(lease, bytes, DeviceChoice{options_.device, options_.cuda_device}, options_.gpu_memory));
  if (options_.task_delay_ms > 0) sleep_ms(options_.task_delay_ms);
  for (const auto& in : lease.inputs()) inputs_->release(in);  // read at the source: drop from our RSS
  *complete = completion(lease, id_, outcome);
  int group = 0;
  for (const auto& outputs : outcome.result.groups) {
    const OutputGroup& g = complete->outputs(group++);
    for (size_t k = 0; k < outputs.size(); ++k) {
      const auto& t = outputs[k];
      const TensorMeta& m = g.tensors(static_cast<int>(k));
      if (lease.keep_activations() && t.spec.name == kActivationsTensor) {  // stays here for the next layer
        SP_RETURN_IF_ERROR(annotate(cache_->insert(m.digest(), [&](const auto& write) { return write(t.data); }),
                                    "keeping the activations for the next layer in the cache"));
        stats_.bytes_kept += t.data.size();
        continue;
      }
      absl::Status put;
      for (int tries = 0; tries < kMaxCorruptRetries; ++tries) {  // damaged on the way: send again
        put = with_retry("upload", [&] { return client_->put(m.digest(), t.data); });
        if (!absl::IsDataLoss(put)) break;
        stats_.corrupt_transfers++;
      }
      SP_RETURN_IF_ERROR(put);
      stats_.bytes_uploaded += t.data.size();
      if (is_internal_tensor(t.spec.name)) {  // the next layer's input: keep it for this worker
        cache_->insert(m.digest(), [&](const auto& write) { return write(t.data); }).IgnoreError();
      }
    }
  }
  return absl::OkStatus();
}

void Worker::heartbeat_loop() {
  while (!heartbeat_stop_) {
    for (int64_t waited = 0; waited < heartbeat_ms_ && !heartbeat_stop_; waited += 50) sleep_ms(50);
    if (heartbeat_stop_) break;
    HeartbeatRequest req;
    req.set_worker_id(id_);
    {
      std::lock_guard lock(leases_mu_);
      for (const auto& [task, attempt] : held_) {
        HeldLease* l = req.add_leases();
        l->set_task_id(task);
        l->set_attempt(attempt);
      }
    }
    auto resp = client_->heartbeat(req);
    if (!resp.ok()) continue;  // unreachable: the main loop's retries deal with it
    std::lock_guard lock(leases_mu_);
    for (const auto& r : resp->revoked()) revoked_.insert({r.task_id(), r.attempt()});
  }
}

}  // namespace sp
