#include "coordinator/task_scheduler.h"

#include <algorithm>

#include "fmt/format.h"

namespace sp {

using shardpress::v1::TaskRecord;
using shardpress::v1::TaskState;

void TaskScheduler::upsert(const TaskRecord& t) { tasks_[t.id()] = t; }

void TaskScheduler::remove_job(const std::string& job_id) {
  for (auto it = tasks_.begin(); it != tasks_.end();)
    it = it->second.job_id() == job_id ? tasks_.erase(it) : std::next(it);
  active_jobs_.erase(job_id);
}

void TaskScheduler::set_job_active(const std::string& job_id, bool active) {
  if (active) active_jobs_.insert(job_id);
  else active_jobs_.erase(job_id);
}

const TaskRecord* TaskScheduler::find(const std::string& task_id) const {
  auto it = tasks_.find(task_id);
  return it == tasks_.end() ? nullptr : &it->second;
}

std::vector<const TaskRecord*> TaskScheduler::tasks_of(const std::string& job_id) const {
  std::vector<const TaskRecord*> out;
  for (const auto& [id, t] : tasks_)
    if (t.job_id() == job_id) out.push_back(&t);
  std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->shard_index() < b->shard_index(); });
  return out;
}

std::vector<TaskRecord> TaskScheduler::extend_all_leases() {
  std::vector<TaskRecord> changed;
  for (auto& [id, t] : tasks_) {
    if (t.state() != TaskState::LEASED) continue;
    t.set_lease_deadline_ms(clock_.now_ms() + options_.lease_ttl_ms);
    changed.push_back(t);
  }
  return changed;
}

std::optional<TaskRecord> TaskScheduler::lease(const std::string& worker_id, uint64_t free_memory,
                                               const std::function<uint64_t(const TaskRecord&)>& memory_of,
                                               const std::function<int(const TaskRecord&)>& affinity) {
  uint32_t held = 0;
  for (const auto& [id, t] : tasks_) held += t.state() == TaskState::LEASED && t.worker_id() == worker_id;
  if (held >= options_.max_leases_per_worker) return std::nullopt;
  TaskRecord* best = nullptr;
  int best_affinity = -1;
  for (auto& [id, t] : tasks_) {
    if (t.state() != TaskState::READY || !active_jobs_.count(t.job_id())) continue;
    if (memory_of(t) > free_memory) continue;
    const int a = affinity(t);
    // Ties go to the oldest job, then the lowest layer (ids sort "layer.10" before "layer.2"),
    // then a forward task (it feeds the next layers of a pipeline).
    const bool earlier =
        best && (t.job_id() < best->job_id() ||
                 (t.job_id() == best->job_id() &&
                  (t.shard_index() < best->shard_index() ||
                   (t.shard_index() == best->shard_index() && t.kind() == shardpress::v1::FORWARD_LAYER &&
                    best->kind() != shardpress::v1::FORWARD_LAYER))));
    if (a > best_affinity || (a == best_affinity && earlier)) {
      best = &t;
      best_affinity = a;
    }
  }
  if (!best) return std::nullopt;
  best->set_state(TaskState::LEASED);
  best->set_attempt(best->attempt() + 1);
  best->set_worker_id(worker_id);
  best->set_lease_deadline_ms(clock_.now_ms() + options_.lease_ttl_ms);
  best->set_started_ms(clock_.now_ms());
  return *best;
}

absl::StatusOr<TaskRecord*> TaskScheduler::held(const std::string& worker_id, const std::string& task_id,
                                                uint32_t attempt) {
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return absl::AbortedError(fmt::format("task {} is not known (job removed?)", task_id));
  TaskRecord& t = it->second;
  if (t.state() != TaskState::LEASED || t.attempt() != attempt || t.worker_id() != worker_id)
    return absl::AbortedError(fmt::format(
        "task {} attempt {} is no longer leased to worker {} (lease lost: expired or reassigned)", task_id, attempt,
        worker_id));
  return &t;
}

absl::StatusOr<TaskRecord> TaskScheduler::heartbeat(const std::string& worker_id, const std::string& task_id,
                                                    uint32_t attempt) {
  SP_ASSIGN_OR_RETURN(TaskRecord * t, held(worker_id, task_id, attempt));
  t->set_lease_deadline_ms(clock_.now_ms() + options_.lease_ttl_ms);
  return *t;
}

absl::StatusOr<TaskRecord> TaskScheduler::complete(const std::string& worker_id, const std::string& task_id,
                                                   uint32_t attempt,
                                                   const std::vector<shardpress::v1::OutputGroup>& outputs,
                                                   const std::vector<shardpress::v1::PruneReport>& reports) {
  SP_ASSIGN_OR_RETURN(TaskRecord * t, held(worker_id, task_id, attempt));
  t->set_state(TaskState::DONE);
  t->set_finished_ms(clock_.now_ms());
  t->set_lease_deadline_ms(0);
  t->clear_outputs();
  for (const auto& g : outputs) *t->add_outputs() = g;
  t->clear_prune_reports();
  for (const auto& r : reports) *t->add_prune_reports() = r;
  return *t;
}

absl::StatusOr<TaskScheduler::FailOutcome> TaskScheduler::fail(const std::string& worker_id,
                                                               const std::string& task_id, uint32_t attempt,
                                                               const std::string& error) {
  SP_ASSIGN_OR_RETURN(TaskRecord * t, held(worker_id, task_id, attempt));
  t->set_failures(t->failures() + 1);
  t->set_last_error(error);
  t->set_lease_deadline_ms(0);
  FailOutcome out;
  out.exhausted = t->failures() >= options_.max_failures;
  t->set_state(out.exhausted ? TaskState::TASK_FAILED : TaskState::READY);
  out.task = *t;
  return out;
}

namespace {
// Back in the queue (the attempt number stays; the next lease bumps it).
void to_ready(TaskRecord& t) {
  t.set_state(TaskState::READY);
  t.set_lease_deadline_ms(0);
}
}  // namespace

std::vector<TaskRecord> TaskScheduler::expire() {
  std::vector<TaskRecord> changed;
  const int64_t now = clock_.now_ms();
  for (auto& [id, t] : tasks_) {
    if (t.state() == TaskState::LEASED && t.lease_deadline_ms() <= now) {
      t.set_last_error(fmt::format("lease of worker {} expired (attempt {})", t.worker_id(), t.attempt()));
      to_ready(t);
      changed.push_back(t);
    }
  }
  return changed;
}

std::vector<TaskRecord> TaskScheduler::release_worker(const std::string& worker_id) {
  std::vector<TaskRecord> changed;
  for (auto& [id, t] : tasks_) {
    if (t.state() == TaskState::LEASED && t.worker_id() == worker_id) {
      to_ready(t);
      changed.push_back(t);
    }
  }
  return changed;
}

std::vector<TaskRecord> TaskScheduler::reset_unfinished(const std::string& job_id) {
  std::vector<TaskRecord> changed;
  for (auto& [id, t] : tasks_) {
    if (t.job_id() != job_id || t.state() == TaskState::DONE) continue;
    to_ready(t);
    if (!dependencies_done(t)) t.set_state(TaskState::WAITING);
    t.set_failures(0);
    changed.push_back(t);
  }
  return changed;
}

bool TaskScheduler::dependencies_done(const TaskRecord& t) const {
  for (const auto& dep : t.depends_on()) {
    const TaskRecord* d = find(dep);
    if (!d || d->state() != TaskState::DONE) return false;
  }
  return true;
}

std::vector<TaskRecord> TaskScheduler::promote(const std::string& job_id) {
  std::vector<TaskRecord> changed;
  for (auto& [id, t] : tasks_) {
    if (t.job_id() != job_id || t.state() != TaskState::WAITING || !dependencies_done(t)) continue;
    t.set_state(TaskState::READY);
    changed.push_back(t);
  }
  return changed;
}

}  // namespace sp
