#include "coordinator/coordinator.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "checkpoint/assembler.h"
#include "checkpoint/compression_record.h"
#include "common/byte_size.h"
#include "common/confined_path.h"
#include "common/file_util.h"
#include "jobs/calibration_plan.h"
#include "coordinator/import_source.h"
#include "jobs/job_settings.h"
#include "jobs/output_check.h"
#include "fmt/format.h"
#include "fmt/ranges.h"
#include "formats/bnb_format.h"
#include "formats/model.h"
#include "formats/token_ids.h"
#include "nlohmann/json.hpp"
#include "ops/finite_check.h"
#include "ops/task_memory.h"

namespace sp {

namespace fs = std::filesystem;
using namespace shardpress::v1;  // NOLINT: the record types

namespace {

constexpr int64_t kWorkerAliveFactor = 3;  // alive = seen within 3 heartbeat intervals
constexpr char kNextSeqKey[] = "next_job_seq";  // in Table::kMeta

std::string serialize(const google::protobuf::Message& m) {
  std::string s;
  m.SerializeToString(&s);
  return s;
}

bool terminal(JobState s) { return s == SUCCEEDED || s == FAILED || s == CANCELLED; }

// Test hook: SHARDPRESS_TEST_DELAY_MS="import=200,assemble=100" sleeps that long per
// imported / assembled tensor, so tests can kill the process at a chosen phase.
int64_t test_delay_ms(std::string_view phase) {
  const char* env = std::getenv("SHARDPRESS_TEST_DELAY_MS");
  if (!env) return 0;
  std::string_view s(env);
  const std::string key = std::string(phase) + "=";
  const size_t pos = s.find(key);
  if (pos == std::string_view::npos) return 0;
  return std::atoll(std::string(s.substr(pos + key.size())).c_str());
}

void sleep_ms(int64_t ms) {
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

std::string state_name(JobState s) {
  switch (s) {
    case QUEUED: return "queued";
    case RUNNING: return "running";
    case ASSEMBLING: return "assembling";
    case SUCCEEDED: return "succeeded";
    case FAILED: return "failed";
    case CANCELLED: return "cancelled";
    default: return "unknown";
  }
}

struct Readable {
  std::string path;  // resolved
  std::string root;  // the root it lies in
};

// Where a job may read `path`: under the model root; an evaluation also under the output
// root, since it scores what jobs wrote there.
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

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options, const Clock& clock)
    : options_(std::move(options)), clock_(clock) {}

Coordinator::~Coordinator() { stop(); }

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::open(CoordinatorOptions options, const Clock& clock) {
  std::unique_ptr<Coordinator> c(new Coordinator(std::move(options), clock));
  SP_ASSIGN_OR_RETURN(c->store_, StateStore::open((fs::path(c->options_.data_dir) / "state").string(),
                                                  c->options_.min_free_bytes));
  c->blobs_ = std::make_unique<BlobStore>(c->store_.get());
  c->scheduler_ = std::make_unique<TaskScheduler>(
      clock, SchedulerOptions{c->options_.lease_ttl_ms, c->options_.max_failures});  // default lease cap
  SP_RETURN_IF_ERROR(c->recover());
  return c;
}

absl::Status Coordinator::recover() {
  std::lock_guard lock(mu_);
  absl::Status parse_error;
  SP_RETURN_IF_ERROR(store_->scan(Table::kJobs, "", [&](std::string_view k, std::string_view v) {
    JobRecord j;
    if (!j.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
      parse_error = absl::DataLossError(fmt::format("state store: job record {} is corrupt", k));
      return false;
    }
    next_seq_ = std::max(next_seq_, j.seq() + 1);
    jobs_[j.id()] = std::move(j);
    return true;
  }));
  SP_RETURN_IF_ERROR(parse_error);
  SP_ASSIGN_OR_RETURN(const auto stored_seq, store_->get(Table::kMeta, kNextSeqKey));
  if (stored_seq) next_seq_ = std::max<uint64_t>(next_seq_, std::strtoull(stored_seq->c_str(), nullptr, 10));
  SP_RETURN_IF_ERROR(store_->scan(Table::kTasks, "", [&](std::string_view k, std::string_view v) {
    TaskRecord t;
    if (!t.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
      parse_error = absl::DataLossError(fmt::format("state store: task record {} is corrupt", k));
      return false;
    }
    scheduler_->upsert(t);
    return true;
  }));
  SP_RETURN_IF_ERROR(parse_error);
  SP_RETURN_IF_ERROR(store_->scan(Table::kWorkers, "", [&](std::string_view, std::string_view v) {
    WorkerRecord w;
    if (w.ParseFromArray(v.data(), static_cast<int>(v.size()))) workers_[w.id()].record = w;
    return true;
  }));
  started_ms_ = clock_.now_ms();
  StateStore::Batch b;
  size_t unfinished = 0;
  const auto leases = scheduler_->extend_all_leases();
  for (auto& [id, j] : jobs_) {
    if (terminal(j.state())) continue;
    ++unfinished;
    size_t held = 0;
    for (const auto& t : leases) held += t.job_id() == id;
    add_event(b, id, fmt::format("coordinator restarted; {} lease{} kept with a fresh {:.0f} s to live (workers "
                                 "reconnect by themselves)",
                                 held, held == 1 ? "" : "s", options_.lease_ttl_ms / 1000.0));
    if (j.state() != RUNNING && j.state() != ASSEMBLING) continue;
    // Imported shards are written without the WAL: re-import any that a crash lost.
    size_t missing = 0;
    for (const auto& s : j.shards())
      for (const auto& t : s.tensors()) {
        SP_ASSIGN_OR_RETURN(const bool have, blobs_->contains(t.digest()));
        missing += have ? 0 : 1;
      }
    if (missing > 0) {
      j.set_imported(false);
      if (j.state() == ASSEMBLING) j.set_state(RUNNING);
      add_event(b, id, fmt::format("recovery: {} imported tensor{} lost in the crash, re-importing", missing,
                                   missing == 1 ? "" : "s"));
    }
    if (j.state() == RUNNING && j.imported()) scheduler_->set_job_active(id, true);
    put_job(b, j);
  }
  for (const auto& t : leases) put_task(b, t);
  log(fmt::format("recovered {} job{} ({} unfinished), {} lease{}, {} known worker{}", jobs_.size(),
                  jobs_.size() == 1 ? "" : "s", unfinished, leases.size(), leases.size() == 1 ? "" : "s",
                  workers_.size(), workers_.size() == 1 ? "" : "s"));
  return commit_locked(b);
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

// ------------------------------------------------------------------ persistence helpers

void Coordinator::put_job(StateStore::Batch& b, const JobRecord& j) { b.put(Table::kJobs, j.id(), serialize(j)); }

void Coordinator::put_task(StateStore::Batch& b, const TaskRecord& t) {
  b.put(Table::kTasks, t.id(), serialize(t));
}

void Coordinator::add_event(StateStore::Batch& b, const std::string& job_id, const std::string& msg) {
  EventRecord e;
  e.set_time_ms(clock_.now_ms());
  e.set_job_id(job_id);
  e.set_message(msg);
  b.put(Table::kEvents, fmt::format("{}/{:013d}-{:08d}", job_id, e.time_ms(), ++event_counter_), serialize(e));
  unlogged_.push_back(fmt::format("{}: {}", job_id, msg));
}

absl::Status Coordinator::commit_locked(StateStore::Batch& b) {
  const absl::Status st = store_->commit(b, true);
  // One log line per state change, once it is durable (or saying it could not be).
  for (const auto& line : unlogged_)
    log(st.ok() ? line : fmt::format("{} (NOT RECORDED: {})", line, std::string(st.message())));
  unlogged_.clear();
  return st;
}

absl::Status Coordinator::persist_tasks(const std::vector<TaskRecord>& tasks, const std::string& why) {
  if (tasks.empty()) return absl::OkStatus();
  StateStore::Batch b;
  for (const auto& t : tasks) {
    put_task(b, t);
    add_event(b, t.job_id(), fmt::format("{}: {}", t.id(), why.empty() ? t.last_error() + ", task is ready again" : why));
  }
  return commit_locked(b);
}

void Coordinator::finish_job_locked(StateStore::Batch& b, JobRecord& j, JobState state, const std::string& error) {
  j.set_state(state);
  j.set_error(error);
  j.set_finished_ms(clock_.now_ms());
  scheduler_->set_job_active(j.id(), false);
  phase_.erase(j.id());
  put_job(b, j);
  add_event(b, j.id(), error.empty() ? fmt::format("job {}", state_name(state))
                                     : fmt::format("job {}: {}", state_name(state), error));
}

bool Coordinator::job_active(const JobRecord& j) const { return j.state() == RUNNING || j.state() == ASSEMBLING; }

bool Coordinator::in_state_locked(const std::string& job_id, JobState state) const {
  auto it = jobs_.find(job_id);
  return it != jobs_.end() && it->second.state() == state;
}

absl::StatusOr<const JobRecord*> Coordinator::find_job_locked(const std::string& ref) const {
  auto it = jobs_.find(ref);
  if (it != jobs_.end()) return &it->second;
  std::vector<const JobRecord*> named;
  for (const auto& [id, j] : jobs_)
    if (j.spec().name() == ref) named.push_back(&j);
  if (named.empty()) return absl::NotFoundError(fmt::format("no job '{}'", ref));
  if (named.size() > 1) {  // names are unique since they are checked at submit; older state may repeat one
    std::string ids;
    for (const auto* j : named) ids += (ids.empty() ? "" : ", ") + j->id();
    return absl::FailedPreconditionError(
        fmt::format("several jobs are named '{}' ({}): give the job id instead", ref, ids));
  }
  return named[0];
}

JobStatus Coordinator::status_locked(const JobRecord& j, bool with_tasks) const {
  JobStatus s;
  s.set_id(j.id());
  *s.mutable_spec() = j.spec();
  s.set_state(j.state());
  s.set_error(j.error());
  s.set_created_ms(j.created_ms());
  s.set_started_ms(j.started_ms());
  s.set_finished_ms(j.finished_ms());
  s.set_model_dir(j.model_dir());
  s.set_output_dir(j.output_dir());
  s.set_now_ms(clock_.now_ms());
  s.set_spec_digest(spec_digest(j.spec()));
  s.set_imported(j.imported());
  for (const auto* t : scheduler_->tasks_of(j.id())) {
    const ShardPlan& shard = j.shards(t->shard_index());
    uint64_t bytes = 0;
    for (const auto& m : shard.tensors()) bytes += m.nbytes();
    s.set_tasks_total(s.tasks_total() + 1);
    s.set_bytes_total(s.bytes_total() + bytes);
    if (t->state() == DONE) {
      s.set_tasks_done(s.tasks_done() + 1);
      s.set_bytes_done(s.bytes_done() + bytes);
    }
    if (!with_tasks) continue;
    TaskStatus* ts = s.add_tasks();
    ts->set_id(t->id());
    ts->set_shard(shard.id());
    ts->set_state(t->state());
    ts->set_attempt(t->attempt());
    ts->set_worker_id(t->worker_id());
    ts->set_started_ms(t->started_ms());
    ts->set_finished_ms(t->finished_ms());
    ts->set_last_error(t->last_error());
    ts->set_input_bytes(bytes);
    ts->set_memory_estimate(shard.memory_estimate());
  }
  for (const auto* t : scheduler_->tasks_of(j.id()))
    if (t->kind() == EVAL_HEAD && t->state() == DONE && t->predictions() > 0) {
      s.set_predictions(t->predictions());
      s.set_mean_nll(t->nll() / static_cast<double>(t->predictions()));
      s.set_perplexity(std::exp(s.mean_nll()));
      if (const auto shape = activations_shape(j); shape.size() == 3) {
        s.set_sequences(shape[0]);
        s.set_seq_len(shape[1]);
      }
    }
  auto ph = phase_.find(j.id());
  if (ph != phase_.end()) s.set_phase(ph->second);
  else if (j.state() == RUNNING)
    s.set_phase(!j.imported() ? "importing" : is_eval_job(j.spec()) ? "evaluating" : "compressing");
  else s.set_phase(state_name(j.state()));
  if (j.state() == RUNNING) {
    // Say why nothing runs: no live worker, or none with enough memory for a task.
    uint64_t smallest_ready = UINT64_MAX, largest_worker = 0;
    bool leased = false;
    for (const auto* t : scheduler_->tasks_of(j.id())) {
      if (t->state() == READY) smallest_ready = std::min(smallest_ready, j.shards(t->shard_index()).memory_estimate());
      leased = leased || t->state() == LEASED;
    }
    size_t alive = 0;
    for (const auto& [id, w] : workers_) {
      if (!alive_locked(w)) continue;
      ++alive;
      largest_worker = std::max(largest_worker, w.record.memory());
    }
    if (smallest_ready != UINT64_MAX && !leased) {
      if (alive == 0)
        s.set_phase("waiting for a worker (none connected)");
      else if (largest_worker < smallest_ready)
        s.set_phase(fmt::format("waiting: a task needs {} but the largest worker offers {}",
                                format_bytes(smallest_ready), format_bytes(largest_worker)));
    }
  }
  return s;
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

absl::StatusOr<JobStatus> Coordinator::submit(const JobSpec& spec_in) {
  SP_ASSIGN_OR_RETURN(Prepared prepared, prepare(spec_in));
  const JobSpec& spec = prepared.spec;
  const bool eval = is_eval_job(spec);
  const std::string& model_dir = spec.model();
  const std::string output_dir = eval ? "" : spec.output();
  std::error_code ec;
  if (!eval && fs::exists(output_dir, ec) && !spec.overwrite())
    return absl::FailedPreconditionError(fmt::format(
        "output {} already exists; choose a new folder (or set overwrite: true to replace it)", output_dir));
  // Read config.json and the safetensors headers now: a bad model is rejected at submit
  // (an evaluation may also read a shardpress NF4 checkpoint, verified here); the text
  // is checked now, not hours later.
  SP_ASSIGN_OR_RETURN(auto source, ImportSource::open(model_dir, prepared.model_root, /*allow_checkpoint=*/eval));
  const int64_t vocab = source->desc().config.vocab_size;
  if (eval)
    SP_RETURN_IF_ERROR(read_token_ids(spec.eval().ids(), vocab, spec.eval().samples(), spec.eval().seq_len()).status());
  else if (spec_needs_calibration(spec))
    SP_RETURN_IF_ERROR(
        read_token_ids(spec.calibrate().ids(), vocab, spec.calibrate().samples(), spec.calibrate().seq_len()).status());

  std::lock_guard lock(mu_);
  for (const auto& [id, j] : jobs_) {
    if (j.spec().name() == spec.name())  // a name refers to one job
      return absl::AlreadyExistsError(fmt::format(
          "a job named '{}' exists already ({}, {}): give this one another name, or resume that one", spec.name(), id,
          state_name(j.state())));
    if (!eval && !terminal(j.state()) && j.output_dir() == output_dir)
      return absl::FailedPreconditionError(fmt::format("job {} already writes to {}", id, output_dir));
  }
  JobRecord j;
  j.set_seq(next_seq_);
  j.set_id(fmt::format("job-{:04d}", j.seq()));
  *j.mutable_spec() = spec;
  j.set_state(QUEUED);
  j.set_created_ms(clock_.now_ms());
  j.set_model_dir(model_dir);
  j.set_output_dir(output_dir);
  StateStore::Batch b;
  put_job(b, j);
  b.put(Table::kMeta, kNextSeqKey, std::to_string(j.seq() + 1));
  add_event(b, j.id(), eval ? fmt::format("submitted '{}': perplexity of {} on {}", spec.name(), model_dir,
                                          spec.eval().ids())
                            : fmt::format("submitted '{}': {} -> {}, {}", spec.name(), model_dir, output_dir,
                                          describe_spec(spec)));
  SP_RETURN_IF_ERROR(commit_locked(b));
  next_seq_ = j.seq() + 1;
  jobs_[j.id()] = j;
  cv_.notify_all();
  return status_locked(j, true);
}

absl::Status Coordinator::remove_job(const std::string& ref) {
  std::lock_guard lock(mu_);
  SP_ASSIGN_OR_RETURN(const JobRecord* found, find_job_locked(ref));
  const std::string id = found->id();
  if (!terminal(found->state()))
    return absl::FailedPreconditionError(fmt::format("job {} is {}: cancel it first", id, state_name(found->state())));
  StateStore::Batch b;
  b.del(Table::kJobs, id);
  for (const auto* t : scheduler_->tasks_of(id)) b.del(Table::kTasks, t->id());
  SP_RETURN_IF_ERROR(store_->scan(Table::kEvents, id + "/", [&](std::string_view k, std::string_view) {
    b.del(Table::kEvents, k);
    return true;
  }));
  SP_RETURN_IF_ERROR(commit_locked(b));
  scheduler_->remove_job(id);
  phase_.erase(id);
  for (auto it = stage_owner_.begin(); it != stage_owner_.end();)
    it = it->first.rfind(id + "#", 0) == 0 ? stage_owner_.erase(it) : std::next(it);
  jobs_.erase(id);  // the runner finds it gone and lets go of it
  log(fmt::format("{}: removed", id));
  cv_.notify_all();
  return absl::OkStatus();
}

absl::StatusOr<JobStatus> Coordinator::job_status(const std::string& ref, bool with_tasks) {
  std::lock_guard lock(mu_);
  SP_ASSIGN_OR_RETURN(const JobRecord* j, find_job_locked(ref));
  return status_locked(*j, with_tasks);
}

std::vector<JobStatus> Coordinator::list_jobs() {
  std::lock_guard lock(mu_);
  std::vector<const JobRecord*> v;
  for (const auto& [id, j] : jobs_) v.push_back(&j);
  std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->seq() < b->seq(); });
  std::vector<JobStatus> out;
  for (const auto* j : v) out.push_back(status_locked(*j, false));
  return out;
}

absl::StatusOr<JobStatus> Coordinator::cancel(const std::string& ref) {
  std::lock_guard lock(mu_);
  SP_ASSIGN_OR_RETURN(const JobRecord* found, find_job_locked(ref));
  JobRecord& j = jobs_[found->id()];
  if (terminal(j.state()))
    return absl::FailedPreconditionError(fmt::format("job {} is already {}", j.id(), state_name(j.state())));
  StateStore::Batch b;
  finish_job_locked(b, j, CANCELLED, "");
  SP_RETURN_IF_ERROR(commit_locked(b));
  cv_.notify_all();
  return status_locked(j, true);
}

absl::StatusOr<JobStatus> Coordinator::resume(const std::string& ref) {
  std::lock_guard lock(mu_);
  SP_ASSIGN_OR_RETURN(const JobRecord* found, find_job_locked(ref));
  JobRecord& j = jobs_[found->id()];
  if (j.state() == SUCCEEDED)
    return absl::FailedPreconditionError(fmt::format("job {} already succeeded: {}", j.id(), j.output_dir()));
  if (!terminal(j.state())) return status_locked(j, true);  // running or queued: nothing to do
  std::error_code ec;
  if (fs::exists(j.output_dir(), ec) && !j.spec().overwrite())
    return absl::FailedPreconditionError(fmt::format("output {} exists now; move it away to resume", j.output_dir()));
  StateStore::Batch b;
  size_t kept = 0;
  for (const auto* t : scheduler_->tasks_of(j.id())) kept += t->state() == DONE;
  for (const auto& t : scheduler_->reset_unfinished(j.id())) put_task(b, t);
  j.set_state(QUEUED);
  j.set_error("");
  j.set_finished_ms(0);
  put_job(b, j);
  add_event(b, j.id(), fmt::format("resumed, keeping {} finished task{}", kept, kept == 1 ? "" : "s"));
  SP_RETURN_IF_ERROR(commit_locked(b));
  cv_.notify_all();
  return status_locked(j, true);
}

std::vector<WorkerInfo> Coordinator::workers() {
  std::lock_guard lock(mu_);
  std::vector<WorkerInfo> out;
  for (const auto& [id, w] : workers_) {
    WorkerInfo i;
    i.set_id(id);
    i.set_host(w.record.host());
    i.set_device(w.record.device());
    i.set_memory(w.record.memory());
    i.set_threads(w.record.threads());
    i.set_registered_ms(w.record.registered_ms());
    i.set_last_seen_ms(w.last_seen_ms);
    i.set_alive(alive_locked(w));
    for (const auto& [jid, j] : jobs_)
      for (const auto* t : scheduler_->tasks_of(jid))
        if (t->state() == LEASED && t->worker_id() == id) i.add_tasks(t->id());
    out.push_back(std::move(i));
  }
  return out;
}

absl::StatusOr<std::vector<EventRecord>> Coordinator::events(const std::string& ref) {
  std::string id;
  {
    std::lock_guard lock(mu_);
    SP_ASSIGN_OR_RETURN(const JobRecord* j, find_job_locked(ref));
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
  WorkerState& w = workers_[r.worker_id()];
  const bool is_new = w.record.id().empty();
  w.record.set_id(r.worker_id());
  w.record.set_host(r.host());
  w.record.set_device(r.device());
  w.record.set_memory(r.memory());
  w.record.set_threads(r.threads());
  if (is_new) w.record.set_registered_ms(clock_.now_ms());
  w.last_seen_ms = clock_.now_ms();
  w.gone = false;
  log(fmt::format("worker {} registered: {} on {}, {} for tasks", r.worker_id(), r.device(), r.host(),
                  format_bytes(r.memory())));
  // A worker registers when it (re)starts: whatever its previous process held is lost.
  StateStore::Batch b;
  b.put(Table::kWorkers, w.record.id(), serialize(w.record));
  for (const auto& t : scheduler_->release_worker(r.worker_id())) {
    put_task(b, t);
    add_event(b, t.job_id(), fmt::format("{}: worker {} restarted, task is ready again", t.id(), r.worker_id()));
  }
  SP_RETURN_IF_ERROR(commit_locked(b));
  RegisterResponse resp;
  resp.set_heartbeat_interval_ms(options_.heartbeat_interval_ms);
  resp.set_lease_ttl_ms(options_.lease_ttl_ms);
  return resp;
}

absl::StatusOr<Coordinator::WorkerState*> Coordinator::seen_locked(const std::string& worker_id) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return absl::FailedPreconditionError(fmt::format("worker {} is not registered", worker_id));
  if (it->second.gone) {
    log(fmt::format("worker {} is back (silent for {:.1f} s)", worker_id,
                    (clock_.now_ms() - it->second.last_seen_ms) / 1000.0));
    it->second.gone = false;
  }
  it->second.last_seen_ms = clock_.now_ms();
  return &it->second;
}

bool Coordinator::alive_locked(const WorkerState& w) const {
  return w.last_seen_ms > 0 && clock_.now_ms() - w.last_seen_ms <= kWorkerAliveFactor * options_.heartbeat_interval_ms;
}

absl::StatusOr<HeartbeatResponse> Coordinator::heartbeat(const HeartbeatRequest& r) {
  std::lock_guard lock(mu_);
  SP_RETURN_IF_ERROR(seen_locked(r.worker_id()).status());
  HeartbeatResponse resp;
  for (const auto& l : r.leases()) {
    // Extensions live in memory only: after a restart every lease gets a fresh TTL.
    if (!scheduler_->heartbeat(r.worker_id(), l.task_id(), l.attempt()).ok()) *resp.add_revoked() = l;
  }
  return resp;
}

absl::StatusOr<LeaseResponse> Coordinator::lease(const LeaseRequest& r) {
  std::lock_guard lock(mu_);
  SP_ASSIGN_OR_RETURN(WorkerState * worker, seen_locked(r.worker_id()));
  const auto& has = worker->has;
  auto shard_of = [&](const TaskRecord& t) -> const ShardPlan& { return jobs_.at(t.job_id()).shards(t.shard_index()); };
  auto memory_of = [&](const TaskRecord& t) {
    return t.kind() == FORWARD_LAYER ? shard_of(t).forward_memory() : shard_of(t).memory_estimate();
  };
  // Affinity: inputs the worker already has; for calibration, the stage it has been
  // running (its layers' weights are cached there, and the chain stays on one machine).
  auto stage_key = [&](const TaskRecord& t) { return fmt::format("{}#{}", t.job_id(), shard_of(t).stage()); };
  auto granted = scheduler_->lease(r.worker_id(), r.free_memory(), memory_of, [&](const TaskRecord& t) {
    int n = 0;
    for (const auto& m : task_inputs(jobs_.at(t.job_id()), t, *scheduler_)) n += has.count(m.digest()) ? 1 : 0;
    if (t.kind() != COMPRESS_LAYER) {
      auto owner = stage_owner_.find(stage_key(t));
      if (owner != stage_owner_.end() && owner->second == r.worker_id()) n += 1000;
    }
    return n;
  });
  LeaseResponse resp;
  if (!granted) return resp;
  if (granted->kind() != COMPRESS_LAYER) stage_owner_.emplace(stage_key(*granted), r.worker_id());
  StateStore::Batch b;
  put_task(b, *granted);
  add_event(b, granted->job_id(), fmt::format("{} leased to worker {} (attempt {})", granted->id(), r.worker_id(),
                                              granted->attempt()));
  SP_RETURN_IF_ERROR(commit_locked(b));
  metrics_.leases++;
  const JobRecord& j = jobs_.at(granted->job_id());
  resp.set_has_task(true);
  resp.set_task_id(granted->id());
  resp.set_attempt(granted->attempt());
  resp.set_kind(granted->kind());
  resp.set_job_id(j.id());
  for (const auto& m : task_inputs(j, *granted, *scheduler_)) *resp.add_inputs() = m;
  *resp.mutable_spec() = j.spec();
  resp.set_lease_ttl_ms(options_.lease_ttl_ms);
  resp.set_memory_estimate(memory_of(*granted));
  if (granted->kind() != COMPRESS_LAYER) {
    resp.set_model_config(j.model_config());
    resp.set_layer(shard_of(*granted).layer());
  }
  return resp;
}

absl::Status Coordinator::complete(const CompleteRequest& r) {
  // Outputs must be in the blob store before the task counts as done.
  for (const auto& g : r.outputs())
    for (const auto& t : g.tensors()) {
      SP_ASSIGN_OR_RETURN(const bool have, blobs_->contains(t.digest()));
      if (!have)
        return absl::FailedPreconditionError(fmt::format("output {} (blob {}) was not uploaded", t.name(), t.digest()));
    }
  std::lock_guard lock(mu_);
  seen_locked(r.worker_id()).IgnoreError();
  const TaskRecord* cur = scheduler_->find(r.task_id());
  if (cur) {
    const JobRecord& job = jobs_.at(cur->job_id());
    const std::vector<int64_t> acts = returns_activations(job, *cur) ? activations_shape(job) : std::vector<int64_t>{};
    SP_RETURN_IF_ERROR(annotate(
        check_outputs(job.shards(cur->shard_index()), job.spec(), r, acts,
                      cur->kind() == FORWARD_LAYER || cur->kind() == EVAL_HEAD),
        r.task_id()));
  }
  if (cur && cur->state() == DONE && cur->attempt() == r.attempt() && cur->worker_id() == r.worker_id())
    return absl::OkStatus();  // a retried complete of a result we already have
  auto done = scheduler_->complete(r.worker_id(), r.task_id(), r.attempt(),
                                   {r.outputs().begin(), r.outputs().end()},
                                   {r.prune_reports().begin(), r.prune_reports().end()});
  if (!done.ok()) {
    metrics_.stale_results++;
    return done.status();
  }
  if (done->kind() == EVAL_HEAD) {
    if (!(r.predictions() > 0 && std::isfinite(r.nll()) && r.nll() >= 0))
      return absl::InvalidArgumentError(fmt::format("{}: no valid likelihood in the result", r.task_id()));
    done->set_nll(r.nll());
    done->set_predictions(r.predictions());
    scheduler_->upsert(*done);
  }
  StateStore::Batch b;
  put_task(b, *done);
  add_event(b, done->job_id(), fmt::format("{} done by worker {} (attempt {}, {:.2f} s)", done->id(), r.worker_id(),
                                           r.attempt(), (done->finished_ms() - done->started_ms()) / 1000.0));
  // The next layers of a calibration chain can run now (same batch: never lost apart).
  std::vector<TaskRecord> promoted = scheduler_->promote(done->job_id());
  for (const auto& t : promoted) put_task(b, t);
  SP_RETURN_IF_ERROR(commit_locked(b));
  if (auto w = workers_.find(r.worker_id()); w != workers_.end())  // it keeps what it produced
    for (const auto& g : r.outputs())
      for (const auto& t : g.tensors())
        if (is_internal_tensor(t.name())) w->second.has.insert(t.digest());
  cv_.notify_all();
  return absl::OkStatus();
}

absl::Status Coordinator::fail(const FailRequest& r) {
  std::lock_guard lock(mu_);
  auto out = scheduler_->fail(r.worker_id(), r.task_id(), r.attempt(), r.error());
  if (!out.ok()) {
    metrics_.stale_results++;
    return out.status();
  }
  StateStore::Batch b;
  put_task(b, out->task);
  add_event(b, out->task.job_id(), fmt::format("{} failed on worker {} (attempt {}): {}", r.task_id(), r.worker_id(),
                                               r.attempt(), r.error()));
  if (out->exhausted) {
    JobRecord& j = jobs_.at(out->task.job_id());
    finish_job_locked(b, j, FAILED,
                      fmt::format("task {} failed {} times: {}", r.task_id(), out->task.failures(), r.error()));
  }
  SP_RETURN_IF_ERROR(commit_locked(b));
  cv_.notify_all();
  return absl::OkStatus();
}

void Coordinator::note_worker_has(const std::string& worker_id, const std::string& digest) {
  std::lock_guard lock(mu_);
  auto it = workers_.find(worker_id);
  if (it != workers_.end()) it->second.has.insert(digest);
}

void Coordinator::expire_leases() {
  std::lock_guard lock(mu_);
  watch_workers_locked();
  auto changed = scheduler_->expire();
  if (changed.empty()) return;
  (void)persist_tasks(changed, "");  // a failed commit is logged; the leases expire again next time
}

void Coordinator::watch_workers_locked() {
  const int64_t now = clock_.now_ms();
  auto held_by = [&](const std::string& worker) {
    std::map<std::string, std::vector<std::string>> held;  // job -> the tasks it holds
    for (const auto& [jid, j] : jobs_)
      for (const auto* t : scheduler_->tasks_of(jid))
        if (t->state() == LEASED && t->worker_id() == worker) held[jid].push_back(t->id().substr(t->id().rfind('/') + 1));
    return held;
  };
  StateStore::Batch b;
  std::vector<std::string> forget;
  for (auto& [id, w] : workers_) {
    if (alive_locked(w)) continue;
    const auto held = held_by(id);
    if (!w.gone && w.last_seen_ms > 0) {  // seen since this coordinator started, silent now
      w.gone = true;
      const double silent = (now - w.last_seen_ms) / 1000.0;
      for (const auto& [jid, tasks] : held)
        add_event(b, jid, fmt::format("worker {} stopped responding (last seen {:.1f} s ago); {} go{} back to the "
                                      "queue when {} lease{} expire{}",
                                      id, silent, fmt::join(tasks, ", "), tasks.size() == 1 ? "es" : "",
                                      tasks.size() == 1 ? "its" : "their", tasks.size() == 1 ? "" : "s",
                                      tasks.size() == 1 ? "s" : ""));
      log(fmt::format("worker {} ({}) stopped responding (last seen {:.1f} s ago)", id, w.record.host(), silent));
    }
    // Forgotten once silent long enough (counted from this coordinator's start for the
    // ones it has not seen), after its leases have expired.
    const int64_t silent_since = std::max(w.last_seen_ms, started_ms_);
    if (options_.forget_workers_after_ms > 0 && now - silent_since >= options_.forget_workers_after_ms &&
        held.empty()) {
      b.del(Table::kWorkers, id);
      forget.push_back(id);
    }
  }
  if (b.count() == 0 || !commit_locked(b).ok()) return;
  for (const auto& id : forget) {
    log(fmt::format("forgot worker {} (not seen for {:.0f} s; --forget-workers-after)", id,
                    (now - std::max(workers_.at(id).last_seen_ms, started_ms_)) / 1000.0));
    workers_.erase(id);
  }
}

std::string Coordinator::metrics_text() {
  std::lock_guard lock(mu_);
  std::map<std::string, int> task_counts, job_counts;
  for (const char* s : {"waiting", "ready", "leased", "done", "failed"}) task_counts[s] = 0;
  for (const char* s : {"queued", "running", "assembling", "succeeded", "failed", "cancelled"}) job_counts[s] = 0;
  for (const auto& [id, j] : jobs_) {
    job_counts[state_name(j.state())]++;
    for (const auto* t : scheduler_->tasks_of(id)) {
      switch (t->state()) {
        case WAITING: task_counts["waiting"]++; break;
        case READY: task_counts["ready"]++; break;
        case LEASED: task_counts["leased"]++; break;
        case DONE: task_counts["done"]++; break;
        default: task_counts["failed"]++; break;
      }
    }
  }
  int alive = 0;
  for (const auto& [id, w] : workers_) alive += alive_locked(w);
  std::string out;
  // One metric family: HELP, TYPE, then `name{labels} value` lines.
  auto family = [&out](const char* name, const char* type, const char* help,
                       const std::vector<std::pair<std::string, uint64_t>>& samples) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    for (const auto& [labels, v] : samples) out += fmt::format("{}{} {}\n", name, labels, v);
  };
  auto by_state = [](const std::map<std::string, int>& counts) {
    std::vector<std::pair<std::string, uint64_t>> v;
    for (const auto& [state, n] : counts) v.push_back({fmt::format("{{state=\"{}\"}}", state), n});
    return v;
  };
  family("shardpress_tasks", "gauge", "Tasks by state.", by_state(task_counts));
  family("shardpress_jobs", "gauge", "Jobs by state.", by_state(job_counts));
  family("shardpress_workers_alive", "gauge", "Workers seen recently.", {{"", alive}});
  family("shardpress_workers_known", "gauge", "Workers ever registered.", {{"", workers_.size()}});
  family("shardpress_blob_bytes_received_total", "counter", "Blob bytes uploaded by workers.",
         {{"", metrics_.blob_bytes_in.load()}});
  family("shardpress_blob_bytes_sent_total", "counter", "Blob bytes sent to workers.", {{"", metrics_.blob_bytes_out.load()}});
  family("shardpress_leases_total", "counter", "Leases granted.", {{"", metrics_.leases.load()}});
  family("shardpress_stale_results_total", "counter", "Results refused (lease lost).", {{"", metrics_.stale_results.load()}});
  family("shardpress_auth_failures_total", "counter", "Calls refused for a missing or wrong token.",
         {{"", metrics_.auth_failures.load()}});
  return out;
}

// ------------------------------------------------------------------ the job runner

void Coordinator::log(const std::string& line) const {
  if (options_.log) options_.log(line);
}

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
  std::string job_id;
  JobState state;
  bool imported;
  {
    std::lock_guard lock(mu_);
    const JobRecord* active = nullptr;
    for (const auto& [id, j] : jobs_)
      if (job_active(j) && (!active || j.seq() < active->seq())) active = &j;
    if (!active) {
      const JobRecord* next = nullptr;
      for (const auto& [id, j] : jobs_)
        if (j.state() == QUEUED && (!next || j.seq() < next->seq())) next = &j;
      if (!next) return;
      JobRecord& j = jobs_[next->id()];
      j.set_state(RUNNING);
      if (j.started_ms() == 0) j.set_started_ms(clock_.now_ms());
      if (j.imported()) scheduler_->set_job_active(j.id(), true);
      StateStore::Batch b;
      put_job(b, j);
      add_event(b, j.id(), "started");
      if (!commit_locked(b).ok()) return;
      active = &j;
    }
    job_id = active->id();
    state = active->state();
    imported = active->imported();
    if (state == RUNNING && imported) {
      const auto tasks = scheduler_->tasks_of(job_id);
      const bool all_done = std::all_of(tasks.begin(), tasks.end(), [](auto* t) { return t->state() == DONE; });
      if (!all_done) return;
      JobRecord& j = jobs_[job_id];
      if (is_eval_job(j.spec())) {  // nothing to write: the result is in the head task
        StateStore::Batch b;
        finish_job_locked(b, j, SUCCEEDED, "");
        commit_locked(b).IgnoreError();
        return;
      }
      j.set_state(ASSEMBLING);
      scheduler_->set_job_active(job_id, false);
      StateStore::Batch b;
      put_job(b, j);
      add_event(b, job_id, fmt::format("all {} tasks done, assembling {}", tasks.size(), j.output_dir()));
      if (!commit_locked(b).ok()) return;
      state = ASSEMBLING;
    }
  }
  absl::Status st;
  try {
    st = state == RUNNING ? import_job(job_id) : assemble_job(job_id);
  } catch (const std::bad_alloc&) {
    st = absl::ResourceExhaustedError("the coordinator ran out of memory planning this job");
  } catch (const std::exception& e) {
    st = absl::InternalError(fmt::format("internal error in the coordinator: {}", e.what()));
  }
  std::lock_guard lock(mu_);
  auto it = jobs_.find(job_id);
  if (absl::IsCancelled(st) || it == jobs_.end()) return;  // cancelled (or removed) meanwhile
  JobRecord& j = it->second;
  StateStore::Batch b;
  if (!st.ok()) {
    finish_job_locked(b, j, FAILED, std::string(st.message()));
  } else if (state == ASSEMBLING) {
    finish_job_locked(b, j, SUCCEEDED, "");
  } else {
    return;  // imported; tasks are running
  }
  commit_locked(b).IgnoreError();
}

// Imports the model shard by shard. Each layer's task is created as soon as its shard is
// in the store, so workers compute while the rest is still being imported. Re-running
// after a crash keeps every task that exists (and its result).
absl::Status Coordinator::import_job(const std::string& job_id) {
  JobRecord j;
  {
    std::lock_guard lock(mu_);
    j = jobs_.at(job_id);
    phase_[job_id] = "importing";
  }
  const bool eval = is_eval_job(j.spec());
  // Checked again: the folder may have changed since submit.
  SP_ASSIGN_OR_RETURN(const Readable model, resolve_readable(options_, j.model_dir(), eval, "model"));
  SP_ASSIGN_OR_RETURN(auto source, ImportSource::open(model.path, model.root, eval));
  const ModelDescription& desc = source->desc();
  const CompressSettings settings = compress_settings(j.spec());
  const int64_t delay = test_delay_ms("import");
  size_t total = 0, done = 0, created = 0;
  bool reimport;
  {
    std::lock_guard lock(mu_);
    reimport = !scheduler_->tasks_of(job_id).empty();
    if (reimport) scheduler_->set_job_active(job_id, false);
  }
  for (const auto& s : desc.shards) total += s.tensors.size();
  j.clear_shards();
  // Calibration and evaluation: the config travels with the tasks, and the token ids are
  // the first (auxiliary) shard, so that layer 0's task can run as soon as it is imported.
  const bool calibrated = !eval && needs_calibration(settings);
  const bool pipelined = j.spec().calibrate().mode() == "pipelined";
  CalibrationShape data;
  std::vector<Stage> stages;
  if (calibrated || eval) {
    j.set_model_config(desc.config.raw.dump());  // without quantization_config
    j.set_hidden_size(desc.config.hidden_size);
    const auto& c = j.spec().calibrate();
    const auto& e = j.spec().eval();
    SP_ASSIGN_OR_RETURN(TokenBatch ids, eval ? read_token_ids(e.ids(), desc.config.vocab_size, e.samples(), e.seq_len())
                                             : read_token_ids(c.ids(), desc.config.vocab_size, c.samples(), c.seq_len()));
    data = {ids.sequences, ids.seq_len};
    stages = plan_stages(desc, settings, data, eval ? (10ull << 30) : c.stage_memory());
    const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(ids.ids.data()), ids.ids.size() * 4);
    SP_ASSIGN_OR_RETURN(std::string digest, blobs_->put(bytes, BlobStore::Durability::kUnlogged));
    ShardPlan* p = j.add_shards();
    p->set_id(kCalibrationShardId);
    p->set_auxiliary(true);
    TensorMeta* m = p->add_tensors();
    m->set_name(kCalibrationIdsTensor);
    m->set_dtype("I32");
    m->add_shape(ids.sequences);
    m->add_shape(ids.seq_len);
    m->set_digest(digest);
    m->set_nbytes(bytes.size());
    m->set_role("calibration_ids");
  }
  for (const ModelShard& s : desc.shards) {
    ShardPlan* p = j.add_shards();
    p->set_id(s.id);
    p->set_is_layer(s.kind == ShardKind::kLayer);
    p->set_layer(s.layer);
    if ((calibrated || eval) && p->is_layer()) {
      p->set_memory_estimate(estimate_calibration_memory(s, desc.config, settings, data).total());
      p->set_forward_memory(estimate_forward_memory(s, desc.config, data).total());
      for (size_t k = 0; k < stages.size(); ++k)
        if (s.layer >= stages[k].first_layer && s.layer <= stages[k].last_layer) p->set_stage(static_cast<int>(k));
    } else if (eval && s.kind == ShardKind::kFinalNorm) {  // the evaluation head runs on this shard
      p->set_memory_estimate(estimate_eval_head_memory(desc.config, data).total());
    } else {
      p->set_memory_estimate(estimate_task_memory(s, settings).total());
    }
    for (const auto& name : s.tensors) {
      {
        std::lock_guard lock(mu_);
        if (!in_state_locked(job_id, RUNNING)) return absl::CancelledError("job no longer running");
        phase_[job_id] = fmt::format("importing {}/{}", done, total);
      }
      const ModelTensor* mt = desc.find(name);
      SP_ASSIGN_OR_RETURN(ImportSource::Tensor t, source->read(name));
      // Shards outside the layers go to the output as they are: they must be finite.
      if (!p->is_layer()) SP_RETURN_IF_ERROR(check_finite(name, t.bytes, t.dtype, mt->stored.shape));
      // A copy of the source: no WAL, no sync (recovery re-imports what a crash lost).
      SP_ASSIGN_OR_RETURN(std::string digest, blobs_->put(t.bytes, BlobStore::Durability::kUnlogged));
      TensorMeta* m = p->add_tensors();
      m->set_name(name);
      m->set_dtype(std::string(dtype_name(t.dtype)));
      for (int64_t d : mt->stored.shape) m->add_shape(d);
      m->set_digest(digest);
      m->set_nbytes(t.bytes.size());
      m->set_role(std::string(role_name(mt->role)));
      m->set_source_file(t.file);  // empty for decoded tensors: always fetched
      m->set_source_offset(t.offset);
      source->release(name);
      ++done;
      sleep_ms(delay);
    }
    const bool last = j.shards_size() == static_cast<int>(desc.shards.size()) + (calibrated || eval ? 1 : 0);
    const bool head = eval && s.kind == ShardKind::kFinalNorm;
    if (!p->is_layer() && !last && !head) continue;
    // Commit the plan so far and this layer's task(s). On a re-import after a crash the job
    // stays inactive until every shard is back, so no task is leased without its inputs.
    std::lock_guard lock(mu_);
    if (!in_state_locked(job_id, RUNNING)) return absl::CancelledError("job no longer running");
    JobRecord& cur = jobs_.at(job_id);
    *cur.mutable_shards() = j.shards();
    cur.set_model_config(j.model_config());
    cur.set_hidden_size(j.hidden_size());
    cur.set_imported(last);
    StateStore::Batch b;
    const int index = j.shards_size() - 1;
    std::vector<TaskRecord> tasks;
    if (eval && (p->is_layer() || head)) {
      tasks = eval_tasks(job_id, index, head ? -1 : p->layer(), desc.config.num_layers);
    } else if (p->is_layer()) {
      if (calibrated) {
        tasks = calibration_tasks(job_id, index, p->layer(), desc.config.num_layers, pipelined);
      } else {
        TaskRecord t;
        t.set_id(fmt::format("{}/{}", job_id, p->id()));
        t.set_job_id(job_id);
        t.set_shard_index(index);
        t.set_kind(COMPRESS_LAYER);
        t.set_state(READY);
        tasks.push_back(t);
      }
    }
    std::vector<TaskRecord> created_now;
    for (TaskRecord& t : tasks) {
      if (scheduler_->find(t.id())) continue;
      if (t.state() == WAITING && scheduler_->dependencies_done(t)) t.set_state(READY);
      put_task(b, t);
      created_now.push_back(t);
      ++created;
    }
    put_job(b, cur);
    if (last)
      add_event(b, job_id, fmt::format("imported {} tensors in {} shards; {} new tasks", total, cur.shards_size(),
                                       created));
    SP_RETURN_IF_ERROR(commit_locked(b));
    for (const auto& t : created_now) scheduler_->upsert(t);
    if (!reimport || last) scheduler_->set_job_active(job_id, true);
  }
  std::lock_guard lock(mu_);
  phase_.erase(job_id);
  return absl::OkStatus();
}

absl::Status Coordinator::assemble_job(const std::string& job_id) {
  JobRecord j;
  std::map<int, TaskRecord> tasks;
  {
    std::lock_guard lock(mu_);
    j = jobs_.at(job_id);
    for (const auto* t : scheduler_->tasks_of(job_id))
      if (t->kind() != FORWARD_LAYER) tasks[t->shard_index()] = *t;
    phase_[job_id] = "assembling";
  }
  // Output tensors in plan order: layer results, and pass-through shards as imported.
  std::vector<TensorGroup> groups;
  std::vector<std::pair<std::string, std::string>> digests;  // name -> blob digest
  auto spec_of = [](const TensorMeta& m) {
    return TensorSpec{m.name(), *dtype_from_name(m.dtype()), {m.shape().begin(), m.shape().end()}};
  };
  for (int i = 0; i < j.shards_size(); ++i) {
    const ShardPlan& s = j.shards(i);
    if (s.auxiliary()) continue;
    if (s.is_layer()) {
      for (const auto& g : tasks.at(i).outputs()) {
        if (g.tensors_size() > 0 && is_internal_tensor(g.tensors(0).name())) continue;
        TensorGroup group;
        for (const auto& m : g.tensors()) {
          group.push_back(spec_of(m));
          digests.emplace_back(m.name(), m.digest());
        }
        groups.push_back(std::move(group));
      }
    } else {
      for (const auto& m : s.tensors()) {
        groups.push_back({spec_of(m)});
        digests.emplace_back(m.name(), m.digest());
      }
    }
  }
  // Published before a crash? Then the manifest lists exactly these digests.
  const fs::path manifest = fs::path(j.output_dir()) / kManifestName;
  std::error_code ec;
  if (fs::exists(j.output_dir(), ec)) {
    auto text = read_file(manifest.string());
    bool same = false;
    if (text.ok()) {
      try {
        const auto m = nlohmann::json::parse(*text);
        same = m.at("tensors").size() == digests.size();
        for (const auto& [name, d] : digests) same = same && m.at("tensors").at(name).at("digest") == d;
      } catch (const std::exception&) {
        same = false;
      }
    }
    if (same) return absl::OkStatus();
    if (!j.spec().overwrite())
      return absl::FailedPreconditionError(fmt::format("output {} appeared while the job ran", j.output_dir()));
  }
  SP_ASSIGN_OR_RETURN(ModelConfig config, load_model_config(j.model_dir(), options_.model_root));
  AssembleOptions ao;
  ao.source_dir = j.model_dir();
  ao.config = config.raw;
  ao.quantization = compress_settings(j.spec()).quantize;
  ao.max_shard_bytes = options_.max_shard_bytes;
  ao.provenance = {{"job", j.id()}, {"name", j.spec().name()}, {"model", j.model_dir()},
                   {"compression", describe_spec(j.spec())}};
  ao.compression = compression_record(compress_settings(j.spec()));
  ao.replace_existing = j.spec().overwrite();
  SP_ASSIGN_OR_RETURN(auto assembler, CheckpointAssembler::create(j.output_dir(), std::move(groups), ao));
  const int64_t delay = test_delay_ms("assemble");
  size_t done = 0;
  for (const auto& [name, digest] : digests) {
    {
      std::lock_guard lock(mu_);
      if (stopping_ || !in_state_locked(job_id, ASSEMBLING)) return absl::CancelledError("job no longer assembling");
      phase_[job_id] = fmt::format("assembling {}/{}", done++, digests.size());
    }
    SP_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, blobs_->read_all(digest));  // digest checked
    SP_RETURN_IF_ERROR(assembler->write(name, bytes, digest));
    sleep_ms(delay);
  }
  return assembler->finish();
}

}  // namespace sp
