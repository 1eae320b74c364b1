#include "coordinator/task_scheduler.h"

#include <algorithm>

#include "fmt/format.h"
#include "jobs/job_plan.h"

namespace sp {

using shardpress::v1::TaskRecord;
using shardpress::v1::TaskState;

namespace {
// Back in the queue (the attempt number stays; the next lease bumps it).
TaskRecord to_ready(TaskRecord t) {
  t.set_state(TaskState::READY);
  t.set_lease_deadline_ms(0);
  return t;
}

// Plan order: by shard, a forward task before the layer task of its shard (it feeds the
// next layers of a pipeline), then by id.
bool plan_order(const TaskRecord& a, const TaskRecord& b) {
  if (a.shard_index() != b.shard_index()) return a.shard_index() < b.shard_index();
  const bool fa = a.kind() == shardpress::v1::FORWARD_LAYER, fb = b.kind() == shardpress::v1::FORWARD_LAYER;
  if (fa != fb) return fa;
  return a.id() < b.id();
}
}  // namespace

void TaskScheduler::upsert(const TaskRecord& t) { tasks_[t.id()] = t; }

void TaskScheduler::upsert(const std::vector<TaskRecord>& tasks) {
  for (const auto& t : tasks) upsert(t);
}

void TaskScheduler::remove_job(const std::string& job_id) {
  for (auto it = tasks_.begin(); it != tasks_.end();)
    it = it->second.job_id() == job_id ? tasks_.erase(it) : std::next(it);
}

const TaskRecord* TaskScheduler::find(const std::string& task_id) const {
  auto it = tasks_.find(task_id);
  return it == tasks_.end() ? nullptr : &it->second;
}

std::vector<const TaskRecord*> TaskScheduler::tasks_of(const std::string& job_id) const {
  std::vector<const TaskRecord*> out;
  for (auto it = tasks_.lower_bound(job_id + "/"); it != tasks_.end() && it->second.job_id() == job_id; ++it)
    out.push_back(&it->second);
  std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return plan_order(*a, *b); });
  return out;
}

std::vector<TaskRecord> TaskScheduler::fresh_leases() const {
  std::vector<TaskRecord> changed;
  for (const auto& [id, t] : tasks_) {
    if (t.state() != TaskState::LEASED) continue;
    TaskRecord c = t;
    c.set_lease_deadline_ms(clock_.now_ms() + options_.lease_ttl_ms);
    changed.push_back(std::move(c));
  }
  return changed;
}

std::optional<TaskRecord> TaskScheduler::choose_lease(const std::string& worker_id, uint64_t free_memory,
                                                      const LeaseQuery& q) const {
  uint32_t held = 0;
  for (const auto& [id, t] : tasks_) held += t.state() == TaskState::LEASED && t.worker_id() == worker_id;
  if (held >= options_.max_leases_per_worker) return std::nullopt;
  const TaskRecord* best = nullptr;
  int best_affinity = -1;
  for (const auto& [id, t] : tasks_) {
    if (t.state() != TaskState::READY || !q.leasable(t)) continue;
    if (q.memory_of(t) > free_memory) continue;
    const int a = q.affinity(t);
    // Ties go to the oldest job, then plan order (layer numbers as numbers, not text).
    const bool earlier = best && (t.job_id() < best->job_id() || (t.job_id() == best->job_id() && plan_order(t, *best)));
    if (a > best_affinity || (a == best_affinity && earlier)) {
      best = &t;
      best_affinity = a;
    }
  }
  if (!best) return std::nullopt;
  TaskRecord t = *best;
  t.set_state(TaskState::LEASED);
  t.set_attempt(t.attempt() + 1);
  t.set_worker_id(worker_id);
  t.set_lease_deadline_ms(clock_.now_ms() + options_.lease_ttl_ms);
  t.set_started_ms(clock_.now_ms());
  return t;
}

absl::StatusOr<const TaskRecord*> TaskScheduler::held(const std::string& worker_id, const std::string& task_id,
                                                      uint32_t attempt) const {
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return absl::AbortedError(fmt::format("task {} is not known (job removed?)", task_id));
  const TaskRecord& t = it->second;
  if (t.state() != TaskState::LEASED || t.attempt() != attempt || t.worker_id() != worker_id)
    return absl::AbortedError(fmt::format(
        "task {} attempt {} is no longer leased to worker {} (lease lost: expired or reassigned)", task_id, attempt,
        worker_id));
  return &t;
}

absl::Status TaskScheduler::extend(const std::string& worker_id, const std::string& task_id, uint32_t attempt) {
  SP_ASSIGN_OR_RETURN(const TaskRecord* t, held(worker_id, task_id, attempt));
  tasks_[t->id()].set_lease_deadline_ms(clock_.now_ms() + options_.lease_ttl_ms);
  return absl::OkStatus();
}

absl::StatusOr<TaskRecord> TaskScheduler::completion(const std::string& worker_id, const std::string& task_id,
                                                     uint32_t attempt,
                                                     const std::vector<shardpress::v1::OutputGroup>& outputs,
                                                     const std::vector<shardpress::v1::PruneReport>& reports) const {
  SP_ASSIGN_OR_RETURN(const TaskRecord* held_task, held(worker_id, task_id, attempt));
  TaskRecord t = *held_task;
  t.set_state(TaskState::DONE);
  t.set_finished_ms(clock_.now_ms());
  t.set_lease_deadline_ms(0);
  t.clear_outputs();
  for (const auto& g : outputs) *t.add_outputs() = g;
  t.clear_prune_reports();
  for (const auto& r : reports) *t.add_prune_reports() = r;
  return t;
}

absl::StatusOr<TaskScheduler::FailOutcome> TaskScheduler::failure(const std::string& worker_id,
                                                                  const std::string& task_id, uint32_t attempt,
                                                                  const std::string& error) const {
  SP_ASSIGN_OR_RETURN(const TaskRecord* held_task, held(worker_id, task_id, attempt));
  FailOutcome out;
  out.task = *held_task;
  out.task.set_failures(out.task.failures() + 1);
  out.task.set_last_error(error);
  out.task.set_lease_deadline_ms(0);
  out.exhausted = out.task.failures() >= options_.max_failures;
  out.task.set_state(out.exhausted ? TaskState::TASK_FAILED : TaskState::READY);
  return out;
}

std::vector<TaskRecord> TaskScheduler::expired_leases() const {
  std::vector<TaskRecord> changed;
  const int64_t now = clock_.now_ms();
  for (const auto& [id, t] : tasks_) {
    if (t.state() != TaskState::LEASED || t.lease_deadline_ms() > now) continue;
    TaskRecord c = to_ready(t);
    c.set_last_error(fmt::format("lease of worker {} expired (attempt {})", t.worker_id(), t.attempt()));
    changed.push_back(std::move(c));
  }
  return changed;
}

std::vector<TaskRecord> TaskScheduler::leases_released(const std::string& worker_id) const {
  std::vector<TaskRecord> changed;
  for (const auto& [id, t] : tasks_)
    if (t.state() == TaskState::LEASED && t.worker_id() == worker_id) changed.push_back(to_ready(t));
  return changed;
}

std::vector<TaskRecord> TaskScheduler::unfinished_reset(const std::string& job_id) const {
  std::vector<TaskRecord> changed;
  for (const auto* t : tasks_of(job_id)) {
    if (t->state() == TaskState::DONE) continue;
    TaskRecord c = to_ready(*t);
    if (!dependencies_done(c)) c.set_state(TaskState::WAITING);
    c.set_failures(0);
    changed.push_back(std::move(c));
  }
  return changed;
}

std::vector<TaskRecord> TaskScheduler::rewound(const std::string& job_id, const shardpress::v1::JobPlan& plan,
                                               const std::function<bool(const TaskRecord&)>& lost,
                                               const std::string& why, const std::vector<TaskRecord>& pending) const {
  const std::vector<const TaskRecord*> tasks = tasks_of(job_id);
  std::map<std::string, TaskRecord> changed;
  for (const auto& t : pending) changed[t.id()] = t;
  auto current = [&](const TaskRecord* t) -> const TaskRecord& {
    auto it = changed.find(t->id());
    return it == changed.end() ? *t : it->second;
  };
  auto keeps = [&](const TaskRecord& t) {
    return t.plan_index() >= 0 && t.plan_index() < plan.tasks_size() && plan.tasks(t.plan_index()).keeps_activations();
  };
  for (bool again = true; again;) {
    again = false;
    for (const TaskRecord* p0 : tasks) {
      const TaskRecord& p = current(p0);
      if (p.state() != TaskState::DONE || !keeps(p) || !lost(p)) continue;
      std::vector<const TaskRecord*> readers;
      bool leased = false;
      for (const TaskRecord* r0 : tasks) {
        const TaskRecord& r = current(r0);
        if (r.state() == TaskState::DONE ||
            std::find(r.depends_on().begin(), r.depends_on().end(), p.id()) == r.depends_on().end())
          continue;
        leased = leased || r.state() == TaskState::LEASED;
        readers.push_back(r0);
      }
      if (readers.empty() || leased) continue;
      TaskRecord back = to_ready(p);
      back.set_last_error(fmt::format("the activations it kept on worker {} are lost ({}); runs again", p.worker_id(), why));
      changed[p.id()] = std::move(back);
      for (const TaskRecord* r0 : readers) {
        TaskRecord w = current(r0);
        w.set_state(TaskState::WAITING);
        changed[w.id()] = std::move(w);
      }
      again = true;
    }
  }
  std::vector<TaskRecord> out;
  for (auto& [id, t] : changed) out.push_back(std::move(t));
  return out;
}

bool TaskScheduler::dependencies_done(const TaskRecord& t) const {
  for (const auto& dep : t.depends_on()) {
    const TaskRecord* d = find(dep);
    if (!d || d->state() != TaskState::DONE) return false;
  }
  return true;
}

std::vector<TaskRecord> TaskScheduler::promotions(const std::string& job_id, const TaskRecord& done) const {
  std::vector<TaskRecord> changed;
  for (const auto* t : tasks_of(job_id)) {
    if (t->state() != TaskState::WAITING) continue;
    bool ready = true;
    for (const auto& dep : t->depends_on()) {
      const TaskRecord* d = dep == done.id() ? &done : find(dep);
      ready = ready && d && d->state() == TaskState::DONE;
    }
    if (!ready) continue;
    TaskRecord c = *t;
    c.set_state(TaskState::READY);
    changed.push_back(std::move(c));
  }
  return changed;
}

std::vector<TaskRecord> TaskScheduler::created_by_import(const std::string& job_id,
                                                        const shardpress::v1::JobPlan& plan, int shard) const {
  std::vector<TaskRecord> created;
  for (int i = 0; i < plan.tasks_size(); ++i) {
    const shardpress::v1::TaskPlan& p = plan.tasks(i);
    const std::string task_id = job_id + "/" + p.name();
    if (last_shard_read(p) > shard || find(task_id)) continue;
    TaskRecord t;
    t.set_id(task_id);
    t.set_job_id(job_id);
    t.set_shard_index(p.shard());
    t.set_plan_index(i);
    t.set_kind(p.kind());
    for (const auto& d : p.depends_on()) t.add_depends_on(job_id + "/" + d);
    t.set_state(t.depends_on_size() == 0 || dependencies_done(t) ? TaskState::READY : TaskState::WAITING);
    created.push_back(std::move(t));
  }
  return created;
}

}  // namespace sp
