#include "coordinator/coordinator.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "common/byte_size.h"
#include "common/confined_path.h"
#include "common/digest.h"
#include "common/duration.h"
#include "coordinator/blob_owners.h"
#include "coordinator/import_source.h"
#include "coordinator/importer.h"
#include "coordinator/job_assembly.h"
#include "coordinator/records.h"
#include "coordinator/rocksdb_store.h"
#include "fmt/format.h"
#include "fmt/ranges.h"
#include "formats/token_ids.h"
#include "jobs/job_plan.h"
#include "jobs/job_settings.h"
#include "jobs/output_check.h"

namespace sp {

namespace fs = std::filesystem;
using namespace shardpress::v1;  // NOLINT: the record types

namespace {

constexpr char kNextSeqKey[] = "next_job_seq";  // in Table::kMeta
// A runner step whose state change could not be recorded is tried again this much later.
constexpr int64_t kRetryAfterFailedCommitMs = 5'000;

std::string task_name(const TaskRecord& t) { return t.id().substr(t.id().rfind('/') + 1); }

// Where a job may read `path`: under the model root; an evaluation also under the output
// root, since it scores what jobs wrote there.
struct Readable {
  std::string path;  // resolved
  std::string root;  // the root it lies in
};
absl::StatusOr<Readable> resolve_readable(const CoordinatorOptions& o, const std::string& path, bool eval,
                                          const char* what) {
  auto in_models = resolve_under(path, o.model_root, what);
  if (in_models.ok() || !eval || !absl::IsPermissionDenied(in_models.status()))
    return in_models.ok() ? absl::StatusOr<Readable>(Readable{*in_models, o.model_root}) : in_models.status();
  auto in_outputs = resolve_under(path, o.output_root, what);
  if (in_outputs.ok()) return Readable{*in_outputs, o.output_root};
  if (!absl::IsPermissionDenied(in_outputs.status())) return in_outputs.status();
  return absl::PermissionDeniedError(fmt::format("{} {} is outside the coordinator's allowed roots {} and {}", what,
                                                 path, o.model_root, o.output_root));
}

// A record's bytes, deterministic, without what lives in memory only (lease extensions).
std::string canonical(google::protobuf::Message&& m) {
  if (auto* t = dynamic_cast<TaskRecord*>(&m)) t->clear_lease_deadline_ms();
  std::string bytes;
  google::protobuf::io::StringOutputStream out(&bytes);
  google::protobuf::io::CodedOutputStream coded(&out);
  coded.SetSerializationDeterministic(true);
  m.SerializeToCodedStream(&coded);
  coded.Trim();
  return digest_hex({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options, const Clock& clock)
    : options_(std::move(options)),
      clock_(clock),
      workers_(clock, options_.heartbeat_interval_ms, options_.forget_workers_after_ms),
      scheduler_(clock, SchedulerOptions{options_.lease_ttl_ms, options_.max_failures}) {}

Coordinator::~Coordinator() { stop(); }

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::open(CoordinatorOptions options, const Clock& clock) {
  std::unique_ptr<Coordinator> c(new Coordinator(std::move(options), clock));
  if (c->options_.store) {
    c->store_ = c->options_.store;
  } else {
    SP_ASSIGN_OR_RETURN(auto rocks, RocksStateStore::open((fs::path(c->options_.data_dir) / "state").string(),
                                                          c->options_.min_free_bytes));
    c->store_ = std::move(rocks);
  }
  c->blobs_ = std::make_unique<BlobStore>(c->store_.get(), clock);
  SP_RETURN_IF_ERROR(c->recover());
  return c;
}

// ------------------------------------------------------------------ recovery

absl::Status Coordinator::recover() {
  std::lock_guard lock(mu_);
  SP_ASSIGN_OR_RETURN(auto jobs, kJobTable.load(*store_));
  SP_ASSIGN_OR_RETURN(auto tasks, kTaskTable.load(*store_));
  SP_ASSIGN_OR_RETURN(auto workers, kWorkerTable.load(*store_));
  SP_ASSIGN_OR_RETURN(const auto stored_seq, store_->get(Table::kMeta, kNextSeqKey));
  // Memory first takes exactly what is durable.
  for (const auto& j : jobs) jobs_.put(j);
  if (stored_seq) jobs_.set_next_seq(std::strtoull(stored_seq->c_str(), nullptr, 10));
  scheduler_.upsert(tasks);
  for (const auto& w : workers) workers_.put(w, /*seen_now=*/false);

  // Then what a restart changes: fresh leases, re-imports of what a crash lost, an event
  // for every unfinished job, and blob owners that follow from the records.
  Change c;
  const auto leases = scheduler_.fresh_leases();
  size_t unfinished = 0;
  for (const JobRecord* jp : jobs_.in_order()) {
    if (job_terminal(jp->state())) continue;
    ++unfinished;
    JobRecord j = *jp;
    std::vector<TaskRecord> changed;
    for (const auto& t : leases)
      if (t.job_id() == j.id()) changed.push_back(t);
    add_event(c, j.id(), fmt::format("coordinator restarted; {} lease{} kept with a fresh {:.0f} s to live (workers "
                                     "reconnect by themselves)",
                                     changed.size(), changed.size() == 1 ? "" : "s", options_.lease_ttl_ms / 1000.0));
    if (j.state() == RUNNING || j.state() == ASSEMBLING) {
      // Imported shards are written without the WAL: re-import any that a crash lost.
      size_t missing = 0;
      for (const auto& s : j.plan().shards())
        for (const auto& m : s.tensors()) {
          if (m.digest().empty()) continue;
          SP_ASSIGN_OR_RETURN(const bool have, blobs_->contains(m.digest()));
          missing += have ? 0 : 1;
        }
      if (missing > 0) {
        j.set_imported(false);
        j.set_imported_shards(0);  // nothing runs until every shard is back
        if (j.state() == ASSEMBLING) j.set_state(RUNNING);
        add_event(c, j.id(), fmt::format("recovery: {} imported tensor{} lost in the crash, re-importing", missing,
                                         missing == 1 ? "" : "s"));
      }
    }
    kJobTable.put(c.batch, j);
    for (const auto& t : changed) kTaskTable.put(c.batch, t);
    c.apply.push_back([this, j, changed] {
      jobs_.put(j);
      scheduler_.upsert(changed);
    });
  }
  // Owners follow from the records as they will be after this change.
  BlobOwnerSet expected;
  for (const JobRecord* j : jobs_.in_order()) {
    const auto owned = blob_owners(*j, scheduler_.tasks_of(j->id()));
    expected.insert(owned.begin(), owned.end());
  }
  SP_ASSIGN_OR_RETURN(const size_t orphans, blobs_->reconcile(expected, c.batch));
  if (orphans > 0)
    c.log.push_back(fmt::format("recovery: {} blob{} nobody owns, deleted if no result claims {} within {}", orphans,
                                orphans == 1 ? "" : "s", orphans == 1 ? "it" : "them",
                                format_duration_ms(options_.unowned_blob_grace_ms)));
  c.log.push_back(fmt::format("recovered {} job{} ({} unfinished), {} lease{}, {} known worker{}", jobs_.size(),
                              jobs_.size() == 1 ? "" : "s", unfinished, leases.size(), leases.size() == 1 ? "" : "s",
                              workers_.all().size(), workers_.all().size() == 1 ? "" : "s"));
  return commit(c);
}

void Coordinator::start() {
  std::lock_guard lock(mu_);
  if (runner_.joinable()) return;
  stopping_ = false;
  runner_ = std::thread([this] { run_loop(); });
}

void Coordinator::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (runner_.joinable()) runner_.join();
}

void Coordinator::log(const std::string& line) const {
  if (options_.log) options_.log(line);
}

// ------------------------------------------------------------------ changes

absl::Status Coordinator::commit(Change& c) {
  if (c.batch.count() == 0) {
    for (auto& f : c.apply) f();
    for (const auto& line : c.log) log(line);
    return absl::OkStatus();
  }
  const absl::Status st = store_->commit(c.batch, true);
  if (st.ok())
    for (auto& f : c.apply) f();
  // One log line per state change, once it is durable (or saying it could not be).
  for (const auto& line : c.log)
    log(st.ok() ? line : fmt::format("{} (NOT RECORDED: {})", line, std::string(st.message())));
  c = Change{};
  return st;
}

void Coordinator::add_event(Change& c, const std::string& job_id, const std::string& msg) {
  EventRecord e;
  e.set_time_ms(clock_.now_ms());
  e.set_job_id(job_id);
  e.set_message(msg);
  std::string v;
  e.SerializeToString(&v);
  c.batch.put(Table::kEvents, event_key(job_id, e.time_ms(), ++event_counter_), v);
  c.log.push_back(fmt::format("{}: {}", job_id, msg));
}

std::vector<const TaskRecord*> Coordinator::tasks_after(const std::string& job_id,
                                                        const std::vector<TaskRecord>& changed) const {
  std::map<std::string, const TaskRecord*> by_id;
  for (const auto* t : scheduler_.tasks_of(job_id)) by_id[t->id()] = t;
  for (const auto& t : changed) by_id[t.id()] = &t;
  std::vector<const TaskRecord*> out;
  for (const auto& [id, t] : by_id) out.push_back(t);
  return out;
}

absl::Status Coordinator::stage(Change& c, const JobRecord& after, const std::vector<TaskRecord>& tasks) {
  // The blob owners the change implies: what the job keeps after, against before.
  const JobRecord* before = jobs_.get(after.id());
  const BlobOwnerSet was = before ? blob_owners(*before, scheduler_.tasks_of(after.id())) : BlobOwnerSet{};
  const BlobOwnerSet now = blob_owners(after, tasks_after(after.id(), tasks));
  BlobStore::OwnerChanges owners;
  for (const auto& [d, o] : was)
    if (!now.count({d, o})) owners.drop(d, o);
  for (const auto& [d, o] : now)
    if (!was.count({d, o})) owners.add(d, o);
  SP_ASSIGN_OR_RETURN(const BlobStore::Freed freed, blobs_->write(owners, c.batch));
  kJobTable.put(c.batch, after);
  for (const auto& t : tasks) kTaskTable.put(c.batch, t);
  c.apply.push_back([this, after, tasks, freed] {
    jobs_.put(after);
    scheduler_.upsert(tasks);
    if (job_terminal(after.state())) phase_.erase(after.id());
    metrics_.blobs_deleted += freed.blobs;
    garbage_bytes_ += freed.bytes;
  });
  return absl::OkStatus();
}

absl::Status Coordinator::finish(Change& c, JobRecord j, JobState state, const std::string& error) {
  j.set_state(state);
  j.set_error(error);
  j.set_finished_ms(clock_.now_ms());
  add_event(c, j.id(), error.empty() ? fmt::format("job {}", job_state_name(state))
                                     : fmt::format("job {}: {}", job_state_name(state), error));
  return stage(c, j, {});
}

absl::Status Coordinator::stage_delete(Change& c, const JobRecord& j) {
  const auto tasks = scheduler_.tasks_of(j.id());
  BlobStore::OwnerChanges owners;
  for (const auto& [d, o] : blob_owners(j, tasks)) owners.drop(d, o);
  SP_ASSIGN_OR_RETURN(const BlobStore::Freed freed, blobs_->write(owners, c.batch));
  const size_t deleted = freed.blobs;
  kJobTable.del(c.batch, j.id());
  for (const auto* t : tasks) kTaskTable.del(c.batch, t->id());
  c.batch.del_range(Table::kEvents, j.id() + "/", j.id() + "/\xff");
  c.log.push_back(fmt::format("{}: deleted ('{}', {}), {} blob{} freed", j.id(), j.spec().name(),
                              job_state_name(j.state()), deleted, deleted == 1 ? "" : "s"));
  const std::string id = j.id();
  c.apply.push_back([this, id, freed] {
    jobs_.erase(id);
    scheduler_.remove_job(id);
    affinity_.forget_job(id);
    phase_.erase(id);
    metrics_.blobs_deleted += freed.blobs;
    garbage_bytes_ += freed.bytes;
  });
  return absl::OkStatus();
}

// ------------------------------------------------------------------ CLI API

absl::StatusOr<Coordinator::Prepared> Coordinator::prepare(const JobSpec& spec_in) const {
  Prepared p{spec_in, ""};
  JobSpec& spec = p.spec;
  SP_RETURN_IF_ERROR(validate_job_spec(spec));
  const bool eval = is_eval_job(spec);
  SP_ASSIGN_OR_RETURN(const Readable model, resolve_readable(options_, spec.model(), eval, "model"));
  spec.set_model(model.path);
  p.model_root = model.root;
  if (!eval) {
    SP_ASSIGN_OR_RETURN(const std::string output, resolve_under(spec.output(), options_.output_root, "output"));
    spec.set_output(output);
  }
  if (eval) {
    SP_ASSIGN_OR_RETURN(const Readable ids, resolve_readable(options_, spec.eval().ids(), eval, "evaluation ids"));
    spec.mutable_eval()->set_ids(ids.path);
  } else if (spec_needs_calibration(spec)) {
    SP_ASSIGN_OR_RETURN(const std::string ids,
                        resolve_under(spec.calibrate().ids(), options_.model_root, "calibration ids"));
    spec.mutable_calibrate()->set_ids(ids);
  }
  return p;
}

absl::StatusOr<JobSpec> Coordinator::normalize_spec(const JobSpec& spec) const {
  SP_ASSIGN_OR_RETURN(Prepared p, prepare(spec));
  return p.spec;
}

absl::StatusOr<std::string> Coordinator::readable_root(const JobRecord& j) const {
  SP_ASSIGN_OR_RETURN(const Readable r, resolve_readable(options_, j.model_dir(), is_eval_job(j.spec()), "model"));
  return r.root;
}

absl::StatusOr<JobStatus> Coordinator::submit(const JobSpec& spec_in) {
  SP_ASSIGN_OR_RETURN(Prepared prepared, prepare(spec_in));
  const JobSpec& spec = prepared.spec;
  const bool eval = is_eval_job(spec);
  const std::string output_dir = eval ? "" : spec.output();
  std::error_code ec;
  if (!eval && fs::exists(output_dir, ec) && !spec.overwrite())
    return absl::FailedPreconditionError(fmt::format(
        "output {} already exists; choose a new folder (or set overwrite: true to replace it)", output_dir));
  // Read config.json and the safetensors headers now: a bad model is rejected at submit
  // (an evaluation may also read a shardpress NF4 checkpoint, verified here); the text
  // is checked now, not hours later.
  SP_ASSIGN_OR_RETURN(auto source, ImportSource::open(spec.model(), prepared.model_root, /*allow_checkpoint=*/eval));
  const int64_t vocab = source->desc().config.vocab_size;
  if (eval)
    SP_RETURN_IF_ERROR(read_token_ids(spec.eval().ids(), vocab, spec.eval().samples(), spec.eval().seq_len()).status());
  else if (spec_needs_calibration(spec))
    SP_RETURN_IF_ERROR(
        read_token_ids(spec.calibrate().ids(), vocab, spec.calibrate().samples(), spec.calibrate().seq_len()).status());

  std::lock_guard lock(mu_);
  SP_RETURN_IF_ERROR(jobs_.check_new(spec.name(), output_dir));
  JobRecord j;
  j.set_seq(jobs_.next_seq());
  j.set_id(fmt::format("job-{:04d}", j.seq()));
  *j.mutable_spec() = spec;
  j.set_state(QUEUED);
  j.set_created_ms(clock_.now_ms());
  j.set_model_dir(spec.model());
  j.set_output_dir(output_dir);
  Change c;
  c.batch.put(Table::kMeta, kNextSeqKey, std::to_string(j.seq() + 1));
  add_event(c, j.id(), eval ? fmt::format("submitted '{}': perplexity of {} on {}", spec.name(), spec.model(),
                                          spec.eval().ids())
                            : fmt::format("submitted '{}': {} -> {}, {}", spec.name(), spec.model(), output_dir,
                                          describe_spec(spec)));
  SP_RETURN_IF_ERROR(stage(c, j, {}));
  SP_RETURN_IF_ERROR(commit(c));
  cv_.notify_all();
  return job_status_view(j, {}, "", workers_, clock_.now_ms(), true);
}

absl::StatusOr<JobStatus> Coordinator::job_status(const std::string& ref, bool with_tasks) {
  std::lock_guard lock(mu_);
  SP_ASSIGN_OR_RETURN(const JobRecord* j, jobs_.find(ref));
  auto ph = phase_.find(j->id());
  return job_status_view(*j, scheduler_.tasks_of(j->id()), ph == phase_.end() ? "" : ph->second, workers_,
                         clock_.now_ms(), with_tasks);
}

std::vector<JobStatus> Coordinator::list_jobs() {
  std::lock_guard lock(mu_);
  std::vector<JobStatus> out;
  for (const JobRecord* j : jobs_.in_order()) {
    auto ph = phase_.find(j->id());
    out.push_back(job_status_view(*j, scheduler_.tasks_of(j->id()), ph == phase_.end() ? "" : ph->second, workers_,
                                  clock_.now_ms(), false));
  }
  return out;
}

absl::StatusOr<JobStatus> Coordinator::cancel(const std::string& ref) {
  std::lock_guard lock(mu_);
  SP_ASSIGN_OR_RETURN(const JobRecord* j, jobs_.find(ref));
  if (job_terminal(j->state()))
    return absl::FailedPreconditionError(fmt::format("job {} is already {}", j->id(), job_state_name(j->state())));
  const std::string id = j->id();
  Change c;
  SP_RETURN_IF_ERROR(finish(c, *j, CANCELLED, ""));
  SP_RETURN_IF_ERROR(commit(c));
  cv_.notify_all();
  return job_status_view(*jobs_.get(id), scheduler_.tasks_of(id), "", workers_, clock_.now_ms(), true);
}

absl::StatusOr<JobStatus> Coordinator::resume(const std::string& ref) {
  std::lock_guard lock(mu_);
  SP_ASSIGN_OR_RETURN(const JobRecord* found, jobs_.find(ref));
  const std::string id = found->id();
  if (found->state() == SUCCEEDED)
    return absl::FailedPreconditionError(fmt::format("job {} already succeeded: {}", id, found->output_dir()));
  if (!job_terminal(found->state()))  // running or queued: nothing to do
    return job_status_view(*found, scheduler_.tasks_of(id), "", workers_, clock_.now_ms(), true);
  std::error_code ec;
  if (!found->output_dir().empty() && fs::exists(found->output_dir(), ec) && !found->spec().overwrite())
    return absl::FailedPreconditionError(
        fmt::format("output {} exists now; move it away to resume", found->output_dir()));
  JobRecord j = *found;
  size_t kept = 0;
  for (const auto* t : scheduler_.tasks_of(id)) kept += t->state() == DONE;
  j.set_state(QUEUED);
  j.set_error("");
  j.set_finished_ms(0);
  Change c;
  add_event(c, id, fmt::format("resumed, keeping {} finished task{}", kept, kept == 1 ? "" : "s"));
  SP_RETURN_IF_ERROR(stage(c, j, scheduler_.unfinished_reset(id)));
  SP_RETURN_IF_ERROR(commit(c));
  cv_.notify_all();
  return job_status_view(*jobs_.get(id), scheduler_.tasks_of(id), "", workers_, clock_.now_ms(), true);
}

absl::StatusOr<JobStatus> Coordinator::delete_job(const std::string& ref) {
  std::lock_guard lock(mu_);
  SP_ASSIGN_OR_RETURN(const JobRecord* j, jobs_.find(ref));
  if (!job_terminal(j->state()))
    return absl::FailedPreconditionError(
        fmt::format("job {} is {}: cancel it first (deleting keeps nothing to resume from)", j->id(),
                    job_state_name(j->state())));
  const JobStatus last = job_status_view(*j, scheduler_.tasks_of(j->id()), "", workers_, clock_.now_ms(), false);
  Change c;
  SP_RETURN_IF_ERROR(stage_delete(c, *j));
  SP_RETURN_IF_ERROR(commit(c));
  cv_.notify_all();  // the runner gives the space back
  return last;
}

std::vector<WorkerInfo> Coordinator::workers() {
  std::lock_guard lock(mu_);
  std::vector<WorkerInfo> out;
  for (const auto& [id, w] : workers_.all()) {
    std::vector<std::string> held;
    for (const JobRecord* j : jobs_.in_order())
      for (const auto* t : scheduler_.tasks_of(j->id()))
        if (t->state() == LEASED && t->worker_id() == id) held.push_back(t->id());
    out.push_back(worker_view(w, workers_.alive(w), held));
  }
  return out;
}

absl::StatusOr<std::vector<EventRecord>> Coordinator::events(const std::string& ref) {
  std::string id;
  {
    std::lock_guard lock(mu_);
    SP_ASSIGN_OR_RETURN(const JobRecord* j, jobs_.find(ref));
    id = j->id();
  }
  std::vector<EventRecord> out;
  SP_RETURN_IF_ERROR(store_->scan(Table::kEvents, id + "/", [&](std::string_view, std::string_view v) {
    EventRecord e;
    if (e.ParseFromArray(v.data(), static_cast<int>(v.size()))) out.push_back(std::move(e));
    return true;
  }));
  return out;
}

// ------------------------------------------------------------------ worker API

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
    return j && p && j->state() == RUNNING && last_shard_read(*p) < j->imported_shards();
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
                                              activations_dtype(job->spec())),
                                r.task_id()));
    if (p.kind() == EVAL_HEAD && !(r.predictions() > 0 && std::isfinite(r.nll()) && r.nll() >= 0))
      return absl::InvalidArgumentError(fmt::format("{}: no valid likelihood in the result", r.task_id()));
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
  for (const auto& g : r.outputs())
    for (const auto& t : g.tensors()) {
      SP_ASSIGN_OR_RETURN(const bool have, blobs_->contains(t.digest()));
      if (!have)
        return absl::FailedPreconditionError(fmt::format("output {} (blob {}) was not uploaded", t.name(), t.digest()));
    }
  JobRecord after = *job;
  if (done->kind() == EVAL_HEAD) {
    after.mutable_result()->set_nll(r.nll());
    after.mutable_result()->set_predictions(r.predictions());
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
  if (out->exhausted) {
    j.set_state(FAILED);
    j.set_error(fmt::format("task {} failed {} times: {}", r.task_id(), out->task.failures(), r.error()));
    j.set_finished_ms(clock_.now_ms());
    add_event(c, j.id(), fmt::format("job failed: {}", j.error()));
  }
  SP_RETURN_IF_ERROR(stage(c, j, {out->task}));
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
  sweep_unowned_locked();
  expire_retained_locked();
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
  (void)commit(c);
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

// ------------------------------------------------------------------ views

std::string Coordinator::metrics_text() {
  MetricsInput in;
  {
    std::lock_guard lock(mu_);
    std::set<std::string> intermediate;
    for (const JobRecord* j : jobs_.in_order()) {
      in.jobs_by_state[job_state_name(j->state())]++;
      for (const auto* t : scheduler_.tasks_of(j->id())) in.tasks_by_state[task_state_word(t->state())]++;
      for (const auto& [digest, owner] : blob_owners(*j, scheduler_.tasks_of(j->id())))
        if (owner.find('/') != std::string::npos) intermediate.insert(digest);  // a task owns it
    }
    in.intermediate_blobs = intermediate.size();
    for (const auto& [id, w] : workers_.all()) in.workers_alive += workers_.alive(w);
    in.workers_known = static_cast<int>(workers_.all().size());
  }
  if (auto census = blobs_->census(); census.ok()) std::tie(in.blobs, in.blob_bytes) = *census;
  return sp::metrics_text(in, metrics_);
}

std::string Coordinator::durable_state() const {
  std::string out;
  auto jobs = kJobTable.load(*store_);
  auto tasks = kTaskTable.load(*store_);
  auto workers = kWorkerTable.load(*store_);
  if (!jobs.ok() || !tasks.ok() || !workers.ok()) return "unreadable";
  for (auto& j : *jobs) out += "job " + j.id() + " " + canonical(std::move(j)) + "\n";
  for (auto& t : *tasks) out += "task " + t.id() + " " + canonical(std::move(t)) + "\n";
  for (auto& w : *workers) out += "worker " + w.id() + " " + canonical(std::move(w)) + "\n";
  (void)store_->scan(Table::kBlobOwners, "", [&](std::string_view k, std::string_view) {
    out += "owner " + std::string(k) + "\n";
    return true;
  });
  return out;
}

std::string Coordinator::memory_state() const {
  std::lock_guard lock(mu_);
  std::string out;
  std::map<std::string, const JobRecord*> jobs;
  for (const JobRecord* j : jobs_.in_order()) jobs[j->id()] = j;
  std::map<std::string, const TaskRecord*> tasks;
  BlobOwnerSet owners;
  for (const auto& [id, j] : jobs) {
    out += "job " + id + " " + canonical(JobRecord(*j)) + "\n";
    for (const auto* t : scheduler_.tasks_of(id)) tasks[t->id()] = t;
    const auto o = blob_owners(*j, scheduler_.tasks_of(id));
    owners.insert(o.begin(), o.end());
  }
  for (const auto& [id, t] : tasks) out += "task " + id + " " + canonical(TaskRecord(*t)) + "\n";
  for (const auto& [id, w] : workers_.all()) out += "worker " + id + " " + canonical(WorkerRecord(w.record)) + "\n";
  for (const auto& [d, o] : owners) out += "owner " + d + "/" + o + "\n";
  return out;
}

// ------------------------------------------------------------------ the job runner

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
  {
    std::unique_lock lock(mu_);
    if (garbage_bytes_ > 0 && !reclaim_checked_) {  // blobs were deleted: give their space back, outside the lock
      reclaim_checked_ = true;
      const uint64_t garbage = garbage_bytes_;
      lock.unlock();
      // Reclaiming rewrites what is still live: done once the garbage is half the live
      // bytes (or more), so the store holds at most 1.5x its live bytes and rewrites at
      // most 2 bytes per byte deleted, whatever the model's size.
      auto census = blobs_->census();
      if (census.ok() && garbage * 2 >= census->second) {
        if (auto st = store_->reclaim(); !st.ok()) {
          log(fmt::format("reclaiming space: {}", std::string(st.message())));
        } else {
          lock.lock();
          garbage_bytes_ -= std::min(garbage_bytes_, garbage);
        }
      }
      return;
    }
    reclaim_checked_ = false;
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
      if (!std::all_of(tasks.begin(), tasks.end(), [](auto* t) { return t->state() == DONE; })) return;
      if (is_eval_job(job.spec())) {  // nothing to write: the result is in the record
        if (finish(c, job, SUCCEEDED, "").ok()) (void)commit(c);
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
  std::lock_guard lock(mu_);
  const JobRecord* now = jobs_.get(job.id());
  if (absl::IsCancelled(st) || !now) return;  // cancelled (or deleted) meanwhile
  if (st.ok() && importing) return;           // imported; tasks are running
  Change c;
  const absl::Status recorded =
      finish(c, *now, st.ok() ? SUCCEEDED : FAILED, st.ok() ? "" : std::string(st.message())).ok() ? commit(c)
                                                                                                  : absl::OkStatus();
  if (!recorded.ok()) {  // memory keeps what the store has; the runner tries again later
    phase_[job.id()] = fmt::format("stalled: the job's end could not be recorded ({}); retrying",
                                   std::string(recorded.message()));
    retry_at_[job.id()] = clock_.now_ms() + kRetryAfterFailedCommitMs;
  }
}

absl::Status Coordinator::run_import(const JobRecord& j) {
  const std::string id = j.id();
  ImportHooks hooks;
  hooks.model_root = [this, &j](const std::string&) { return readable_root(j); };
  hooks.running = [this, id] {
    std::lock_guard lock(mu_);
    const JobRecord* cur = jobs_.get(id);
    return !stopping_ && cur && cur->state() == RUNNING;
  };
  hooks.phase = [this, id](const std::string& p) {
    std::lock_guard lock(mu_);
    phase_[id] = p;
  };
  hooks.commit = [this](const JobRecord& imported, int shard, bool last) { return commit_import(imported, shard, last); };
  hooks.delay_ms = options_.test.import_delay_ms;
  const absl::Status st = import_job(j, *blobs_, hooks);
  std::lock_guard lock(mu_);
  phase_.erase(id);
  return st;
}

absl::Status Coordinator::commit_import(const JobRecord& imported, int shard, bool last) {
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
  std::vector<TaskRecord> created;
  for (int i = 0; i < j.plan().tasks_size(); ++i) {
    const TaskPlan& p = j.plan().tasks(i);
    const std::string task_id = j.id() + "/" + p.name();
    if (last_shard_read(p) > shard || scheduler_.find(task_id)) continue;
    TaskRecord t;
    t.set_id(task_id);
    t.set_job_id(j.id());
    t.set_shard_index(p.shard());
    t.set_plan_index(i);
    t.set_kind(p.kind());
    for (const auto& d : p.depends_on()) t.add_depends_on(j.id() + "/" + d);
    t.set_state(t.depends_on_size() == 0 || scheduler_.dependencies_done(t) ? READY : WAITING);
    created.push_back(std::move(t));
  }
  Change c;
  if (last) {
    size_t tensors = 0;
    for (const auto& s : j.plan().shards()) tensors += static_cast<size_t>(s.tensors_size());
    add_event(c, j.id(), fmt::format("imported {} tensors in {} shards; {} new tasks", tensors, j.plan().shards_size(),
                                     scheduler_.tasks_of(j.id()).size() + created.size()));
  }
  SP_RETURN_IF_ERROR(stage(c, j, created));
  SP_RETURN_IF_ERROR(commit(c));
  cv_.notify_all();
  return absl::OkStatus();
}

absl::Status Coordinator::run_assembly(const JobRecord& j) {
  const std::string id = j.id();
  std::map<std::string, TaskRecord> outputs;
  {
    std::lock_guard lock(mu_);
    for (const auto* t : scheduler_.tasks_of(id)) outputs[task_name(*t)] = *t;
  }
  AssemblyHooks hooks;
  hooks.running = [this, id] {
    std::lock_guard lock(mu_);
    const JobRecord* cur = jobs_.get(id);
    return !stopping_ && cur && cur->state() == ASSEMBLING;
  };
  hooks.phase = [this, id](const std::string& p) {
    std::lock_guard lock(mu_);
    phase_[id] = p;
  };
  hooks.model_root = options_.model_root;
  hooks.max_shard_bytes = options_.max_shard_bytes;
  hooks.delay_ms = options_.test.assemble_delay_ms;
  hooks.fail_writes_after_bytes = options_.test.fail_output_writes_after_bytes;
  const absl::Status st = assemble_job(j, outputs, *blobs_, hooks);
  std::lock_guard lock(mu_);
  phase_.erase(id);
  return st;
}

}  // namespace sp
