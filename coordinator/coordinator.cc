// The coordinator: opening and recovery, the one commit path (validate, commit one batch,
// apply to memory) and the state views. Its CLI API, worker API and job runner are in
// coordinator_cli_api.cc, coordinator_worker_api.cc and job_runner.cc; the managers it
// composes each have their own file (see coordinator.h).
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

// ------------------------------------------------------------------ views

std::string Coordinator::metrics_text() {
  MetricsInput in;
  {
    std::lock_guard lock(mu_);
    std::set<std::string> intermediate;
    for (const JobRecord* j : jobs_.in_order()) {
      in.jobs_by_state[job_state_name(j->state())]++;
      if (j->started_ms() > 0)
        in.jobs.push_back({j->id(), j->spec().name(), job_state_name(j->state()),
                           ((j->finished_ms() > 0 ? j->finished_ms() : clock_.now_ms()) - j->started_ms()) / 1000.0});
      for (const auto* t : scheduler_.tasks_of(j->id())) in.tasks_by_state[task_state_word(t->state())]++;
      if (j->plan().activations_shape_size() == 0) continue;  // no activations in this job
      for (const auto& [digest, owner] : blob_owners(*j, scheduler_.tasks_of(j->id())))
        if (owner.find('/') != std::string::npos) intermediate.insert(digest);  // a task owns it
    }
    in.intermediate_blobs = intermediate.size();
    for (const auto& [id, w] : workers_.all()) {
      in.workers_alive += workers_.alive(w);
      in.workers.push_back({id, w.record.host(), workers_.alive(w)});
    }
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

}  // namespace sp
