// The coordinator's worker API (register, heartbeat, lease, complete, fail) and its timers
// (lease expiry, silent workers, unowned uploads, retention).
#include "coordinator/coordinator.h"

#include "coordinator/blob_owners.h"
#include "coordinator/records.h"
#include "fmt/format.h"
#include <algorithm>
#include <cmath>

#include "common/byte_size.h"
#include "common/duration.h"
#include "jobs/job_plan.h"
#include "jobs/job_settings.h"
#include "jobs/output_check.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT: the record types

absl::StatusOr<RegisterResponse> Coordinator::register_worker(const RegisterRequest& r) {
  if (r.worker_id().empty()) return absl::InvalidArgumentError("worker_id is empty");
  std::lock_guard lock(mu_);
  const WorkerRecord record = workers_.registration(r);
  Change c;
  kWorkerTable.put(c.batch, record);
  // A worker registers when it (re)starts: whatever its previous process held is lost.
  std::map<std::string, std::vector<TaskRecord>> released;
  for (auto& t : scheduler_.leases_released(r.worker_id())) released[t.job_id()].push_back(std::move(t));
  for (const auto& [job_id, tasks] : released) {
    for (const auto& t : tasks)
      add_event(c, job_id, fmt::format("{}: worker {} restarted, task is ready again", t.id(), r.worker_id()));
    SP_RETURN_IF_ERROR(stage(c, *jobs_.get(job_id), tasks));
  }
  c.log.push_back(fmt::format("worker {} registered: {} on {}, {} for tasks", r.worker_id(), r.device(), r.host(),
                              format_bytes(r.memory())));
  c.apply.push_back([this, record] { workers_.put(record, /*seen_now=*/true); });
  SP_RETURN_IF_ERROR(commit(c));
  RegisterResponse resp;
  resp.set_heartbeat_interval_ms(options_.heartbeat_interval_ms);
  resp.set_lease_ttl_ms(options_.lease_ttl_ms);
  return resp;
}

absl::StatusOr<HeartbeatResponse> Coordinator::heartbeat(const HeartbeatRequest& r) {
  std::lock_guard lock(mu_);
  double back = 0;
  SP_RETURN_IF_ERROR(workers_.seen(r.worker_id(), &back).status());
  if (back > 0) log(fmt::format("worker {} is back (silent for {:.1f} s)", r.worker_id(), back));
  HeartbeatResponse resp;
  for (const auto& l : r.leases())  // extensions live in memory only (see TaskScheduler)
    if (!scheduler_.extend(r.worker_id(), l.task_id(), l.attempt()).ok()) *resp.add_revoked() = l;
  return resp;
}

std::vector<TensorMeta> Coordinator::task_inputs(const JobRecord& j, const TaskRecord& t) const {
  if (t.plan_index() < 0 || t.plan_index() >= j.plan().tasks_size()) return {};
  return resolve_inputs(j.plan(), j.plan().tasks(t.plan_index()), [&](const std::string& name) {
    return scheduler_.find(j.id() + "/" + name);
  });
}

LeaseResponse Coordinator::lease_response(const JobRecord& j, const TaskRecord& t) const {
  const TaskPlan& p = j.plan().tasks(t.plan_index());
  LeaseResponse resp;
  resp.set_has_task(true);
  resp.set_task_id(t.id());
  resp.set_attempt(t.attempt());
  resp.set_kind(t.kind());
  resp.set_job_id(j.id());
  for (const auto& m : task_inputs(j, t)) *resp.add_inputs() = m;
  *resp.mutable_spec() = j.spec();
  resp.set_lease_ttl_ms(options_.lease_ttl_ms);
  resp.set_memory_estimate(p.memory());
  resp.set_keep_activations(p.keeps_activations());
  if (const TensorMeta* stats = statistics_source_locked(t)) *resp.add_inputs() = *stats;
  resp.set_return_statistics(t.returns_statistics());
  if (t.returns_statistics())  // the copy of the sums it returns
    resp.set_memory_estimate(p.memory() + static_cast<uint64_t>(statistics_values_locked(j)) * sizeof(float));
  if (t.kind() != COMPRESS_LAYER) {
    resp.set_model_config(j.model_config());
    resp.set_layer(j.plan().shards(p.shard()).layer());
  }
  return resp;
}

absl::StatusOr<LeaseResponse> Coordinator::lease(const LeaseRequest& r) {
  std::lock_guard lock(mu_);
  double back = 0;
  SP_ASSIGN_OR_RETURN(WorkerRegistry::Worker * worker, workers_.seen(r.worker_id(), &back));
  if (back > 0) log(fmt::format("worker {} is back (silent for {:.1f} s)", r.worker_id(), back));
  auto plan_task = [this](const TaskRecord& t) -> const TaskPlan* {
    const JobRecord* j = jobs_.get(t.job_id());
    return j && t.plan_index() >= 0 && t.plan_index() < j->plan().tasks_size() ? &j->plan().tasks(t.plan_index())
                                                                              : nullptr;
  };
  auto stage_of = [this](const TaskRecord& t) {
    const JobRecord* j = jobs_.get(t.job_id());
    return j && t.shard_index() < j->plan().shards_size() ? j->plan().shards(t.shard_index()).stage() : 0;
  };
  TaskScheduler::LeaseQuery q;
  // A task runs once its job is running and the shards it reads are imported.
  q.leasable = [&](const TaskRecord& t) {
    const JobRecord* j = jobs_.get(t.job_id());
    const TaskPlan* p = plan_task(t);
    if (!j || !p || j->state() != RUNNING || last_shard_read(*p) >= j->imported_shards()) return false;
    // Activations kept on the worker that made them: only that worker can run their reader.
    const std::string holder =
        holder_of_inputs(j->plan(), *p, [&](const std::string& name) { return scheduler_.find(j->id() + "/" + name); });
    return holder.empty() || holder == r.worker_id();
  };
  q.memory_of = [&](const TaskRecord& t) {
    const TaskPlan* p = plan_task(t);
    return p ? p->memory() : UINT64_MAX;
  };
  q.affinity = [&](const TaskRecord& t) {
    return affinity_.score(t, stage_of(t), task_inputs(*jobs_.get(t.job_id()), t), worker->has, r.worker_id());
  };
  auto granted = scheduler_.choose_lease(r.worker_id(), r.free_memory(), q);
  if (!granted) return LeaseResponse();
  const JobRecord& j = *jobs_.get(granted->job_id());
  Change c;
  share_statistics_locked(c, j, *granted);
  add_event(c, j.id(), fmt::format("{} leased to worker {} (attempt {})", granted->id(), r.worker_id(),
                                   granted->attempt()));
  SP_RETURN_IF_ERROR(stage(c, j, {*granted}));
  const int stage_index = stage_of(*granted);
  c.apply.push_back([this, t = *granted, stage_index, worker_id = r.worker_id()] {
    affinity_.leased(t, stage_index, worker_id);
  });
  SP_RETURN_IF_ERROR(commit(c));
  metrics_.leases++;
  return lease_response(j, *granted);
}

absl::Status Coordinator::complete(const CompleteRequest& r) {
  std::lock_guard lock(mu_);
  (void)workers_.seen(r.worker_id());
  const TaskRecord* cur = scheduler_.find(r.task_id());
  const JobRecord* job = cur ? jobs_.get(cur->job_id()) : nullptr;
  if (cur && job && cur->plan_index() >= 0 && cur->plan_index() < job->plan().tasks_size()) {
    // The result must be what the plan says this task returns.
    const TaskPlan& p = job->plan().tasks(cur->plan_index());
    const std::vector<int64_t> acts = p.returns_activations()
                                          ? std::vector<int64_t>(job->plan().activations_shape().begin(),
                                                                 job->plan().activations_shape().end())
                                          : std::vector<int64_t>{};
    SP_RETURN_IF_ERROR(annotate(check_outputs(job->plan().shards(p.shard()), compress_settings(job->spec()), r, acts,
                                              p.kind() == FORWARD_LAYER || p.kind() == EVAL_HEAD,
                                              activations_dtype(job->spec()),
                                              cur->returns_statistics() ? statistics_values_locked(*job) : 0),
                                r.task_id()));
    if (p.kind() == EVAL_HEAD && !(r.predictions() > 0 && std::isfinite(r.nll()) && r.nll() >= 0))
      return absl::InvalidArgumentError(fmt::format("{}: no valid likelihood in the result", r.task_id()));
    const int choice_sequences = job->plan().choices().choice_bytes_size();
    if (p.kind() == EVAL_HEAD && r.logliks_size() != choice_sequences)
      return absl::InvalidArgumentError(fmt::format("{}: {} choice log-likelihoods for {} sequences", r.task_id(),
                                                    r.logliks_size(), choice_sequences));
    for (double v : r.logliks())
      if (!std::isfinite(v) || v > 0)
        return absl::InvalidArgumentError(fmt::format("{}: a choice log-likelihood is {}", r.task_id(), v));
  }
  if (cur && cur->state() == DONE && cur->attempt() == r.attempt() && cur->worker_id() == r.worker_id())
    return absl::OkStatus();  // a retried complete of a result we already have
  auto done = scheduler_.completion(r.worker_id(), r.task_id(), r.attempt(), {r.outputs().begin(), r.outputs().end()},
                                    {r.prune_reports().begin(), r.prune_reports().end()});
  if (!done.ok()) {
    metrics_.stale_results++;
    return done.status();
  }
  // Outputs must be in the blob store before the task counts as done (checked under the
  // lock that deletions take: a blob found here is not deleted before it is owned).
  const int pi = done->plan_index();  // activations kept on the worker are not uploaded
  const bool kept = pi >= 0 && pi < job->plan().tasks_size() && job->plan().tasks(pi).keeps_activations();
  for (const auto& g : r.outputs())
    for (const auto& t : g.tensors()) {
      if (kept && t.name() == kActivationsTensor) continue;
      SP_ASSIGN_OR_RETURN(const bool have, blobs_->contains(t.digest()));
      if (!have)
        return absl::FailedPreconditionError(fmt::format("output {} (blob {}) was not uploaded", t.name(), t.digest()));
    }
  // Uploads are unlogged (each byte written once, into the blob files, instead of also into
  // the WAL): they are made durable here, before the record that refers to them.
  SP_RETURN_IF_ERROR(annotate(store_->persist_unlogged(), "storing the results"));
  JobRecord after = *job;
  if (done->kind() == EVAL_HEAD) {
    after.mutable_result()->set_nll(r.nll());
    after.mutable_result()->set_predictions(r.predictions());
    *after.mutable_result()->mutable_logliks() = r.logliks();
  }
  // The next tasks of a chain can run now: promoted in the same batch (never lost apart).
  std::vector<TaskRecord> changed = scheduler_.promotions(job->id(), *done);
  changed.insert(changed.begin(), *done);
  Change c;
  add_event(c, job->id(), fmt::format("{} done by worker {} (attempt {}, {:.2f} s)", done->id(), r.worker_id(),
                                      r.attempt(), (done->finished_ms() - done->started_ms()) / 1000.0));
  SP_RETURN_IF_ERROR(stage(c, after, changed));
  c.apply.push_back([this, r] {  // it keeps what it produced
    for (const auto& g : r.outputs())
      for (const auto& t : g.tensors())
        if (is_internal_tensor(t.name())) workers_.note_has(r.worker_id(), t.digest());
  });
  SP_RETURN_IF_ERROR(commit(c));
  metrics_.tasks_completed++;
  cv_.notify_all();
  return absl::OkStatus();
}

absl::Status Coordinator::fail(const FailRequest& r) {
  std::lock_guard lock(mu_);
  auto out = scheduler_.failure(r.worker_id(), r.task_id(), r.attempt(), r.error());
  if (!out.ok()) {
    metrics_.stale_results++;
    return out.status();
  }
  JobRecord j = *jobs_.get(out->task.job_id());
  Change c;
  add_event(c, j.id(), fmt::format("{} failed on worker {} (attempt {}): {}", r.task_id(), r.worker_id(), r.attempt(),
                                   r.error()));
  std::vector<TaskRecord> changed = {out->task};
  if (!out->exhausted) {
    // It may have failed for want of the activations its producer kept on this worker
    // (evicted from its cache, say): that producer runs again, anywhere.
    const auto& deps = out->task.depends_on();
    changed = scheduler_.rewound(
        j.id(), j.plan(),
        [&](const TaskRecord& p) {
          return p.worker_id() == r.worker_id() && std::find(deps.begin(), deps.end(), p.id()) != deps.end();
        },
        fmt::format("{} failed there", task_name(out->task)), changed);
    add_rewind_events(c, j.id(), changed, r.task_id());
  }
  if (out->exhausted) {
    j.set_state(FAILED);
    j.set_error(fmt::format("task {} failed {} times: {}", r.task_id(), out->task.failures(), r.error()));
    j.set_finished_ms(clock_.now_ms());
    add_event(c, j.id(), fmt::format("job failed: {}", j.error()));
  }
  SP_RETURN_IF_ERROR(stage(c, j, changed));
  SP_RETURN_IF_ERROR(commit(c));
  cv_.notify_all();
  return absl::OkStatus();
}

void Coordinator::note_worker_has(const std::string& worker_id, const std::string& digest) {
  std::lock_guard lock(mu_);
  workers_.note_has(worker_id, digest);
}

// ------------------------------------------------------------------ timers

void Coordinator::expire_leases() {
  std::lock_guard lock(mu_);
  watch_workers_locked();
  std::map<std::string, std::vector<TaskRecord>> expired;
  for (auto& t : scheduler_.expired_leases()) expired[t.job_id()].push_back(std::move(t));
  if (!expired.empty()) {
    Change c;
    bool staged = true;
    for (const auto& [job_id, tasks] : expired) {
      for (const auto& t : tasks) add_event(c, job_id, fmt::format("{}: {}, task is ready again", t.id(), t.last_error()));
      staged = staged && stage(c, *jobs_.get(job_id), tasks).ok();
    }
    if (staged) (void)commit(c);  // a failed commit is logged; the leases expire again next time
  }
  rewind_lost_locked();
  sweep_unowned_locked();
  expire_retained_locked();
}

void Coordinator::add_rewind_events(Change& c, const std::string& job_id, const std::vector<TaskRecord>& rewound,
                                    const std::string& skip) {
  for (const auto& t : rewound)
    if (t.id() != skip)
      add_event(c, job_id, fmt::format("{}: {}", t.id(), t.state() == READY ? t.last_error() : "waits for it"));
}

void Coordinator::rewind_lost_locked() {
  Change c;
  bool staged = true;
  for (const JobRecord* j : jobs_.in_order()) {
    if (j->state() != RUNNING) continue;
    const auto back = scheduler_.rewound(
        j->id(), j->plan(),
        [&](const TaskRecord& p) {
          return workers_.lost(p.worker_id(), options_.lease_ttl_ms);  // a silence a lease would not survive
        },
        "the worker is gone");
    if (back.empty()) continue;
    add_rewind_events(c, j->id(), back, "");
    staged = staged && stage(c, *j, back).ok();
  }
  if (staged) (void)commit(c);  // a failed commit is logged; the next tick tries again
}

void Coordinator::sweep_unowned_locked() {
  Change c;
  auto swept = blobs_->sweep_unowned(options_.unowned_blob_grace_ms, c.batch);
  if (!swept.ok()) {
    log(fmt::format("sweeping unowned blobs: {}", std::string(swept.status().message())));
    return;
  }
  if (swept->digests.empty()) return;
  const size_t n = swept->digests.size();
  c.log.push_back(fmt::format("{} uploaded blob{} no task result claimed deleted", n, n == 1 ? "" : "s"));
  c.apply.push_back([this, n, s = *swept] {
    blobs_->forget(s.digests);
    metrics_.blobs_deleted += n;
    garbage_bytes_ += s.bytes;
  });
  (void)commit(c);  // a failed commit is logged; those blobs are swept again next time
}

void Coordinator::watch_workers_locked() {
  Change c;
  for (const WorkerRegistry::Worker* w : workers_.newly_gone()) {
    const std::string& id = w->record.id();
    const double silent = (clock_.now_ms() - w->last_seen_ms) / 1000.0;
    std::map<std::string, std::vector<std::string>> held;  // job -> the tasks it holds
    for (const JobRecord* j : jobs_.in_order())
      for (const auto* t : scheduler_.tasks_of(j->id()))
        if (t->state() == LEASED && t->worker_id() == id) held[j->id()].push_back(task_name(*t));
    for (const auto& [jid, tasks] : held)
      add_event(c, jid, fmt::format("worker {} stopped responding (last seen {:.1f} s ago); {} go{} back to the "
                                    "queue when {} lease{} expire{}",
                                    id, silent, fmt::join(tasks, ", "), tasks.size() == 1 ? "es" : "",
                                    tasks.size() == 1 ? "its" : "their", tasks.size() == 1 ? "" : "s",
                                    tasks.size() == 1 ? "s" : ""));
    c.log.push_back(fmt::format("worker {} ({}) stopped responding (last seen {:.1f} s ago)", id, w->record.host(),
                                silent));
  }
  // Forgotten once silent long enough, after its leases have expired.
  for (const std::string& id : workers_.forgettable()) {
    bool holds = false;
    for (const JobRecord* j : jobs_.in_order())
      for (const auto* t : scheduler_.tasks_of(j->id())) holds = holds || (t->state() == LEASED && t->worker_id() == id);
    if (holds) continue;
    kWorkerTable.del(c.batch, id);
    c.log.push_back(fmt::format("forgot worker {} (not seen for {:.0f} s; --forget-workers-after)", id,
                                workers_.silent_ms(*workers_.get(id)) / 1000.0));
    c.apply.push_back([this, id] { workers_.forget(id); });
  }
  (void)commit(c);  // a failed commit is logged (commit()); the next tick tries again
}

void Coordinator::expire_retained_locked() {
  if (options_.retention_ms <= 0) return;
  const int64_t now = clock_.now_ms();
  for (const JobRecord* j : jobs_.in_order()) {
    if (!job_terminal(j->state()) || j->finished_ms() == 0 || now - j->finished_ms() < options_.retention_ms) continue;
    Change c;
    if (!stage_delete(c, *j).ok()) return;
    c.log.push_back(fmt::format("{}: finished {:.0f} s ago, past --retention", j->id(), (now - j->finished_ms()) / 1000.0));
    if (!commit(c).ok()) return;
    return;  // one per tick: the registry changed under the loop
  }
}

}  // namespace sp
