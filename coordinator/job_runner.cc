// The job runner: one thread that gives deleted blobs' space back and starts, imports,
// assembles and finishes jobs one step at a time (the heavy work outside the lock).
#include "coordinator/coordinator.h"

#include "coordinator/blob_owners.h"
#include "coordinator/records.h"
#include "fmt/format.h"
#include <chrono>
#include <filesystem>

#include "coordinator/import_source.h"
#include "coordinator/importer.h"
#include "coordinator/job_assembly.h"
#include "jobs/evaluation_gate.h"
#include "jobs/job_plan.h"
#include "jobs/job_settings.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT: the record types

namespace {

// A runner step whose state change could not be recorded is tried again this much later.
constexpr int64_t kRetryAfterFailedCommitMs = 5'000;

// The bytes of a file, or of every file under a folder (0 for what cannot be read).
uint64_t bytes_on_disk(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    const auto n = fs::file_size(path, ec);
    return ec ? 0 : n;
  }
  uint64_t total = 0;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  return total;
}

}  // namespace

void Coordinator::run_loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    try {
      step();
    } catch (const std::exception& e) {  // a bug must not take the daemon down: say so and go on
      log(fmt::format("job runner: internal error: {}", e.what()));
    }
    lock.lock();
    if (stopping_) break;
    cv_.wait_for(lock, std::chrono::milliseconds(200));
  }
}

void Coordinator::step() {
  JobRecord job;
  TaskOutputs streamable;  // set: the job runs, some results are DONE and its output is being written
  {
    std::unique_lock lock(mu_);
    if (garbage_bytes_ > 0 && garbage_bytes_ != garbage_checked_) {  // more deleted: give space back, unlocked
      const uint64_t garbage = garbage_checked_ = garbage_bytes_;
      lock.unlock();
      // Reclaiming rewrites what is still live: done once the garbage is half the live
      // bytes (or more), so garbage waits only while it is under half the live bytes and
      // a reclaim rewrites at most 2 bytes per byte deleted, whatever the model's size.
      auto census = blobs_->census();
      if (census.ok() && garbage * 2 >= census->second) {
        if (auto st = store_->reclaim(); !st.ok()) {
          log(fmt::format("reclaiming space: {}", std::string(st.message())));
        } else {
          lock.lock();
          garbage_bytes_ -= std::min(garbage_bytes_, garbage);
          garbage_checked_ = garbage_bytes_;
        }
      }
      return;
    }
    settle_evaluations_locked();
    // Streams of jobs that no longer run or assemble (cancelled, failed, deleted) go.
    for (auto it = streams_.begin(); it != streams_.end();) {
      const JobRecord* j = jobs_.get(it->first);
      it = j && (j->state() == RUNNING || j->state() == ASSEMBLING) ? std::next(it) : streams_.erase(it);
    }
    const JobRecord* next = jobs_.next_to_run();
    if (!next) return;
    if (auto r = retry_at_.find(next->id()); r != retry_at_.end()) {
      if (clock_.now_ms() < r->second) return;
      retry_at_.erase(r);
    }
    job = *next;
    Change c;
    if (job.state() == QUEUED) {
      job.set_state(RUNNING);
      if (job.started_ms() == 0) job.set_started_ms(clock_.now_ms());
      add_event(c, job.id(), "started");
      if (!stage(c, job, {}).ok() || !commit(c).ok()) return;
    }
    if (job.state() == RUNNING && job.imported()) {
      const auto tasks = scheduler_.tasks_of(job.id());
      if (!std::all_of(tasks.begin(), tasks.end(), [](auto* t) { return t->state() == DONE; })) {
        if (is_eval_job(job.spec()) || options_.test.assemble_delay_ms > 0 || unstreamed_.count(job.id())) return;
        for (const auto* t : tasks) streamable[task_name(*t)] = *t;
      }
    }
    if (!streamable.empty()) {
      lock.unlock();
      stream_output(job, streamable);
      return;
    }
    if (job.state() == RUNNING && job.imported()) {
      const auto tasks = scheduler_.tasks_of(job.id());
      if (is_eval_job(job.spec())) {  // nothing to write: the result is in the record
        if (!job.eval_cache_key().empty()) {  // an original model's: later jobs on it take it from here
          std::string v;
          if (job.spec().eval().choices().empty()) {
            job.result().SerializeToString(&v);
            c.batch.put(Table::kMeta, kEvalCachePrefix + job.eval_cache_key(), v);
          } else if (const auto acc = choice_accuracy_of(job.plan(), job.result())) {
            choice_score(*acc).SerializeToString(&v);
            c.batch.put(Table::kMeta, kChoiceCachePrefix + job.eval_cache_key(), v);
          }
        }
        if (finish(c, job, SUCCEEDED, "").ok()) (void)commit(c);  // failed: logged, the next step tries again
        return;
      }
      job.set_state(ASSEMBLING);
      add_event(c, job.id(), fmt::format("all {} tasks done, assembling {}", tasks.size(), job.output_dir()));
      if (!stage(c, job, {}).ok() || !commit(c).ok()) return;
    }
  }
  const bool importing = job.state() == RUNNING;
  absl::Status st;
  try {
    st = importing ? run_import(job) : run_assembly(job);
  } catch (const std::bad_alloc&) {
    st = absl::ResourceExhaustedError("the coordinator ran out of memory planning this job");
  } catch (const std::exception& e) {
    st = absl::InternalError(fmt::format("internal error in the coordinator: {}", e.what()));
  }
  const bool evaluate = st.ok() && !importing && job.spec().has_evaluate();
  const EvaluationKeys cache_keys = evaluate ? evaluation_cache_keys(job) : EvaluationKeys{};  // reads files: unlocked
  const uint64_t output_bytes = st.ok() && !importing ? bytes_on_disk(job.output_dir()) : 0;
  std::lock_guard lock(mu_);
  const JobRecord* found = jobs_.get(job.id());
  if (absl::IsCancelled(st) || !found) return;  // cancelled (or deleted) meanwhile
  if (st.ok() && importing) return;             // imported; tasks are running
  JobRecord written = *found;
  written.set_output_bytes(output_bytes);
  const JobRecord* now = &written;
  Change c;
  absl::Status staged;
  if (evaluate) {
    staged = stage_evaluation(c, *now, cache_keys);
    if (!staged.ok()) {  // the evaluation cannot even start (say, the ids file went): the job says why
      c = Change{};
      staged = finish(c, *now, FAILED, fmt::format("the output is written, but its evaluation cannot start: {}",
                                                   std::string(staged.message())));
    }
  } else {
    staged = finish(c, *now, st.ok() ? SUCCEEDED : FAILED, st.ok() ? "" : std::string(st.message()));
  }
  const absl::Status recorded = staged.ok() ? commit(c) : absl::OkStatus();
  if (!recorded.ok()) {  // memory keeps what the store has; the runner tries again later
    phase_[job.id()] = fmt::format("stalled: the job's end could not be recorded ({}); retrying",
                                   std::string(recorded.message()));
    retry_at_[job.id()] = clock_.now_ms() + kRetryAfterFailedCommitMs;
  }
}

std::function<bool()> Coordinator::still_in(const std::string& id, JobState state) {
  return [this, id, state] {
    std::lock_guard lock(mu_);
    const JobRecord* cur = jobs_.get(id);
    return !stopping_ && cur && cur->state() == state;
  };
}

std::function<void(const std::string&)> Coordinator::phase_of(const std::string& id) {
  return [this, id](const std::string& p) {
    std::lock_guard lock(mu_);
    phase_[id] = p;
  };
}

absl::Status Coordinator::run_import(const JobRecord& j) {
  const std::string id = j.id();
  ImportHooks hooks;
  hooks.model_root = [this, &j](const std::string&) { return readable_root(j); };
  hooks.running = still_in(id, RUNNING);
  hooks.phase = phase_of(id);
  hooks.commit = [this](const JobRecord& imported, int shard, bool last, size_t reused) {
    return commit_import(imported, shard, last, reused);
  };
  hooks.known_digests = [this] {
    std::lock_guard lock(mu_);
    return known_digests_locked();
  };
  hooks.delay_ms = options_.test.import_delay_ms;
  hooks.copy = options_.copy_models;
  const absl::Status st = import_job(j, *blobs_, hooks);
  std::lock_guard lock(mu_);
  phase_.erase(id);
  return st;
}

KnownDigests Coordinator::known_digests_locked() const {
  KnownDigests out;
  for (const JobRecord* j : jobs_.in_order())
    for (const auto& s : j->plan().shards())
      for (const auto& m : s.tensors())
        if (!m.digest().empty() && !m.source_file().empty() && m.source_mtime_ns() != 0)
          out.emplace(SourceKey{m.source_file(), m.source_offset(), m.nbytes(), m.source_mtime_ns()}, m.digest());
  return out;
}

absl::Status Coordinator::commit_import(const JobRecord& imported, int shard, bool last, size_t reused) {
  std::lock_guard lock(mu_);
  const JobRecord* cur = jobs_.get(imported.id());
  if (!cur || cur->state() != RUNNING) return absl::CancelledError("job no longer running");
  // The shard's blobs are in the store now (checked under the lock deletions take).
  for (const auto& m : imported.plan().shards(shard).tensors()) {
    SP_ASSIGN_OR_RETURN(const bool have, blobs_->contains(m.digest()));
    if (!have) return absl::UnavailableError(fmt::format("blob missing: {} was deleted meanwhile", m.name()));
  }
  JobRecord j = *cur;
  *j.mutable_plan() = imported.plan();
  j.set_model_config(imported.model_config());
  j.set_hidden_size(imported.hidden_size());
  j.set_imported_shards(shard + 1);
  j.set_imported(last);
  // The tasks that read only shards imported by now (a re-import keeps those that exist).
  std::vector<TaskRecord> created = scheduler_.created_by_import(j.id(), j.plan(), shard);
  Change c;
  if (last) {
    size_t tensors = 0;
    for (const auto& s : j.plan().shards()) tensors += static_cast<size_t>(s.tensors_size());
    add_event(c, j.id(), fmt::format("imported {} tensors in {} shards{}; {} new tasks", tensors, j.plan().shards_size(),
                                     reused == 0 ? ""
                                                 : fmt::format(" ({} known from an earlier job's import: not read again)",
                                                               reused),
                                     scheduler_.tasks_of(j.id()).size() + created.size()));
  }
  SP_RETURN_IF_ERROR(stage(c, j, created));
  SP_RETURN_IF_ERROR(commit(c));
  cv_.notify_all();
  return absl::OkStatus();
}

AssemblyHooks Coordinator::assembly_hooks(const std::string& id, JobState state) {
  AssemblyHooks hooks;
  hooks.running = still_in(id, state);
  hooks.phase = phase_of(id);
  hooks.model_root = options_.model_root;
  hooks.max_shard_bytes = options_.max_shard_bytes;
  hooks.delay_ms = options_.test.assemble_delay_ms;
  hooks.fail_writes_after_bytes = options_.test.fail_output_writes_after_bytes;
  return hooks;
}

void Coordinator::stream_output(const JobRecord& j, const TaskOutputs& outputs) {
  const std::string id = j.id();
  auto it = streams_.find(id);
  absl::Status st;
  if (it == streams_.end()) {
    auto opened = OutputStream::open(j, *blobs_, assembly_hooks(id, RUNNING));
    if (opened.ok()) it = streams_.emplace(id, std::move(*opened)).first;
    st = opened.status();
  }
  if (st.ok()) st = it->second->write_done(outputs);
  if (st.ok() || absl::IsCancelled(st)) return;
  // Not fatal: the assembly at the end writes everything (and fails the job if it must).
  if (it != streams_.end()) streams_.erase(it);
  std::lock_guard lock(mu_);
  unstreamed_.insert(id);
  log(fmt::format("{}: writing the output while tasks finish stopped ({}); it is written at the end", id,
                  std::string(st.message())));
}

absl::Status Coordinator::run_assembly(const JobRecord& j) {
  const std::string id = j.id();
  TaskOutputs outputs;
  {
    std::lock_guard lock(mu_);
    for (const auto* t : scheduler_.tasks_of(id)) outputs[task_name(*t)] = *t;
    unstreamed_.erase(id);
  }
  std::unique_ptr<OutputStream> stream;
  if (auto it = streams_.find(id); it != streams_.end()) {
    stream = std::move(it->second);
    streams_.erase(it);
  }
  const absl::Status st = assemble_job(j, outputs, *blobs_, assembly_hooks(id, ASSEMBLING), std::move(stream));
  std::lock_guard lock(mu_);
  phase_.erase(id);
  return st;
}

}  // namespace sp
