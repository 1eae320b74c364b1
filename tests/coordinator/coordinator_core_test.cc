// The coordinator's core in one process, without a network or a disk for its state: the
// in-memory store, a fake clock, and tasks computed in-process by the worker's own
// compute_task. Each lifecycle — submit, import, lease, complete, fail, expire, cancel,
// resume, delete, and an evaluation — is run once with every commit succeeding, and then
// again with its 1st, 2nd, ... Nth commit failing: after every call, memory must equal
// what a restart would load (Coordinator::memory_state() == durable_state()), a
// coordinator reopened on the store right after the failure must load exactly that, and
// the job must still end with the same output bytes as the run without a failure.
#include <filesystem>
#include <functional>
#include <optional>

#include "checkpoint/local_compress.h"
#include "common/digest.h"
#include "common/file_util.h"
#include "coordinator/memory_store.h"
#include "fmt/format.h"
#include "formats/token_ids.h"
#include "jobs/job_plan.h"
#include "tests/coordinator/test_lab.h"
#include "worker/task_compute.h"

namespace sp {
namespace {

namespace fs = std::filesystem;
using namespace shardpress::v1;  // NOLINT

constexpr int64_t kLeaseTtlMs = 10'000;
constexpr int64_t kGraceMs = 60'000;  // unowned uploads are swept after this

// Every blob's digest, straight from the store's table: stored ones and references into
// source files.
void for_each_blob(const StateStore& store, const std::function<void(const std::string&)>& fn) {
  for (const char* prefix : {"h/", "s/"})
    (void)store.scan(Table::kBlobs, prefix, [&](std::string_view k, std::string_view) {
      fn(std::string(k.substr(2)));
      return true;
    });
}

// Owners without a blob, straight from the store's tables (blobs without an owner are
// allowed for a while: uploads of results that never came, swept after their grace).
std::string blob_inconsistencies(const MemoryStateStore& store) {
  std::set<std::string> blobs, owned;
  for_each_blob(store, [&](const std::string& d) { blobs.insert(d); });
  (void)store.scan(Table::kBlobOwners, "", [&](std::string_view k, std::string_view) {
    owned.insert(std::string(k.substr(0, k.find('/'))));
    return true;
  });
  std::string out;
  for (const auto& d : owned)
    if (!blobs.count(d)) out += "owned but absent " + d + "\n";
  return out;
}

size_t blob_count(const MemoryStateStore& store) {
  size_t n = 0;
  for_each_blob(store, [&](const std::string&) { ++n; });
  return n;
}

// A worker's own cache, in-process: the activations it keeps instead of uploading.
using WorkerCache = std::map<std::string, std::vector<uint8_t>>;

// What a worker does, in-process: lease, read the inputs from its cache or the
// coordinator's blob store, compute with the worker's own code, upload the outputs (kept
// activations go into `cache`). The completion is returned, not sent, so that the caller
// decides when (and how often) to send it.
absl::StatusOr<std::optional<CompleteRequest>> lease_and_compute(Coordinator& c, const std::string& worker,
                                                                 WorkerCache* cache = nullptr) {
  LeaseRequest lr;
  lr.set_worker_id(worker);
  lr.set_free_memory(8ull << 30);
  SP_ASSIGN_OR_RETURN(const LeaseResponse lease, c.lease(lr));
  if (!lease.has_task()) return std::optional<CompleteRequest>();
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<std::span<const uint8_t>> spans;
  for (const auto& in : lease.inputs()) {
    if (cache && cache->count(in.digest())) {
      bytes.push_back(cache->at(in.digest()));
      continue;
    }
    SP_ASSIGN_OR_RETURN(auto b, c.blobs().read_all(in.digest()));
    bytes.push_back(std::move(b));
  }
  for (const auto& b : bytes) spans.emplace_back(b);
  SP_ASSIGN_OR_RETURN(const TaskOutcome outcome, compute_task(lease, spans, DeviceChoice{}, UINT64_MAX));
  for (const auto& g : outcome.result.groups)
    for (const auto& t : g) {
      if (lease.keep_activations() && t.spec.name == kActivationsTensor) {
        if (!cache) return absl::InternalError("a kept boundary needs a worker cache");
        (*cache)[digest_hex(t.data)] = std::vector<uint8_t>(t.data.begin(), t.data.end());
        continue;
      }
      SP_RETURN_IF_ERROR(c.blobs().put(t.data, BlobStore::Durability::kLogged).status());
    }
  return std::optional<CompleteRequest>(completion(lease, worker, outcome));
}

class Core : public ::testing::Test {
 public:  // for Lifecycle
  void SetUp() override {
    fs::copy_file(test::fixture("stories260k/text/calib.ids.txt"), lab_.dir() / "models/calib.ids.txt");
    fs::copy_file(test::fixture("stories260k/text/eval.ids.txt"), lab_.dir() / "models/eval.ids.txt");
  }

  std::unique_ptr<Coordinator> open(std::shared_ptr<MemoryStateStore> store) {
    CoordinatorOptions o = lab_.options();
    o.store = std::move(store);
    o.lease_ttl_ms = kLeaseTtlMs;
    o.heartbeat_interval_ms = 1'000;
    o.forget_workers_after_ms = 0;
    o.unowned_blob_grace_ms = kGraceMs;
    auto c = Coordinator::open(o, clock_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  JobSpec rtn(const std::string& name) { return lab_.job(name, name); }
  JobSpec gptq(const std::string& name) {
    JobSpec s = lab_.job(name, name);
    s.mutable_quantize()->set_method("gptq");
    s.mutable_calibrate()->set_ids(lab_.dir() / "models/calib.ids.txt");
    s.mutable_calibrate()->set_samples(8);
    return s;
  }
  JobSpec evaluation(const std::string& name) {
    JobSpec s;
    s.set_name(name);
    s.set_model(lab_.dir() / "models/stories");
    s.mutable_eval()->set_ids(lab_.dir() / "models/eval.ids.txt");
    s.mutable_eval()->set_samples(8);
    return s;
  }

  static RegisterRequest registration(const std::string& worker) {
    RegisterRequest r;
    r.set_worker_id(worker);
    r.set_host("lab");
    r.set_device("cpu");
    r.set_memory(8ull << 30);
    return r;
  }

  // The output folder's files and their bytes' digests.
  std::map<std::string, std::string> output_digests(const std::string& name) {
    std::map<std::string, std::string> out;
    const fs::path dir = lab_.dir() / ("out/" + name);
    if (!fs::exists(dir)) return out;
    for (const auto& e : fs::directory_iterator(dir)) {
      auto bytes = read_file(e.path().string());
      const std::string& b = *bytes;
      out[e.path().filename().string()] = digest_hex({reinterpret_cast<const uint8_t*>(b.data()), b.size()});
    }
    return out;
  }

  test::CoordinatorLab lab_;
  FakeClock clock_;
};

// Drives one job through its life with one in-process worker, the way an operator and a
// worker would, each step retried until the coordinator takes it: submit; the runner
// imports; one task fails once, one lease expires once, the job is cancelled and resumed
// once, every task is completed, the runner assembles; then the job is deleted. After
// every call memory must equal the durable state; when commit number `fail_at` fails, the
// coordinator is also reopened on the store right then and must load what memory held.
struct Lifecycle {
  Lifecycle(Core* core, JobSpec s, int fail) : t(core), spec(std::move(s)), fail_at(fail) {}
  Core* t;
  std::shared_ptr<MemoryStateStore> store = std::make_shared<MemoryStateStore>();
  std::unique_ptr<Coordinator> c;
  JobSpec spec;
  int fail_at;  // 0: no commit fails

  bool registered = false, submitted = false, failed_once = false, expired_once = false, cancelled_once = false;
  bool deleted = false, restarted = false, holding_for_expiry = false;
  std::optional<CompleteRequest> pending;  // a completion the coordinator has not taken yet
  WorkerCache cache;                       // w1's
  std::map<std::string, std::string> output;
  JobStatus final_status;
  int refused_calls = 0;  // calls refused because their commit failed

  void check(const std::string& after) {
    ASSERT_EQ(c->memory_state(), c->durable_state()) << "after " << after << " (commit " << fail_at << " failing)";
    ASSERT_EQ(blob_inconsistencies(*store), "") << "after " << after;
    if (fail_at > 0 && !restarted && store->commits() >= fail_at) {
      restarted = true;
      const std::string before = c->memory_state();
      c.reset();
      c = t->open(store);
      ASSERT_NE(c, nullptr);
      ASSERT_EQ(c->memory_state(), before) << "a restart after the failed commit of " << after << " loads other state";
      ASSERT_EQ(c->memory_state(), c->durable_state());
    }
  }
  // A call the failing commit may refuse: it must say so (UNAVAILABLE), never half-apply.
  bool accepted(const absl::Status& st, const std::string& what) {
    if (st.ok()) return true;
    EXPECT_TRUE(absl::IsUnavailable(st)) << what << ": " << st;
    ++refused_calls;
    return false;
  }

  void run() {
    c = t->open(store);
    ASSERT_NE(c, nullptr);
    if (fail_at > 0) store->fail_commit(fail_at);
    for (int i = 0; i < 2000 && !deleted; ++i) {
      std::string what;
      act(&what);
      if (::testing::Test::HasFatalFailure()) return;
      check(what);
      if (::testing::Test::HasFatalFailure()) return;
    }
    ASSERT_TRUE(deleted) << "the job did not finish in 2000 steps";
    // The uploads of the failed attempt, once past their grace, go too.
    clock_advance(kGraceMs + 1);
    c->expire_leases();
    check("the sweep of unowned uploads");
    if (fail_at > 0) {
      EXPECT_TRUE(restarted) << "commit " << fail_at << " never happened";
    }
  }

  void act(std::string* what) {
    if (!registered) {
      *what = "register";
      registered = accepted(c->register_worker(Core::registration("w1")).status(), *what);
      return;
    }
    if (!submitted) {
      *what = "submit";
      submitted = accepted(c->submit(spec).status(), *what);
      return;
    }
    auto s = c->job_status(spec.name());
    ASSERT_TRUE(s.ok()) << s.status();
    const bool eval = spec.has_eval();
    switch (s->state()) {
      case QUEUED:
      case ASSEMBLING:
        *what = fmt::format("runner step ({})", JobState_Name(s->state()));
        c->step();
        clock_advance(6'000);  // a finish that could not be recorded is retried 5 s later
        return;
      case RUNNING:
        if (!s->imported()) {
          *what = "runner step (import)";
          c->step();
          return;
        }
        return work(*s, what);
      case CANCELLED:
      case FAILED:
        *what = "resume";
        if (accepted(c->resume(spec.name()).status(), *what)) {
          pending.reset();
          holding_for_expiry = false;
        }
        return;
      case SUCCEEDED:
        if (final_status.id().empty()) {
          final_status = *s;
          if (!eval) output = t->output_digests(spec.name());
        }
        *what = "delete";
        deleted = accepted(c->delete_job(spec.name()).status(), *what);
        return;
      default:
        FAIL() << "unexpected state " << JobState_Name(s->state());
    }
  }

  void clock_advance(int64_t ms) { t->clock_.advance(ms); }

  void work(const JobStatus& s, std::string* what) {
    int done = 0;
    for (const auto& task : s.tasks()) done += task.state() == DONE;
    if (!cancelled_once && done >= 1) {
      *what = "cancel";
      cancelled_once = accepted(c->cancel(spec.name()).status(), *what);
      return;
    }
    if (pending) {
      *what = "complete " + pending->task_id();
      const absl::Status st = c->complete(*pending);
      // Taken, or the lease is gone (ABORTED: expired or reset meanwhile; the task runs again).
      if (st.ok() || absl::IsAborted(st)) pending.reset();
      else accepted(st, *what);
      return;
    }
    if (holding_for_expiry) {
      *what = "expire";
      clock_advance(kLeaseTtlMs + 1);
      c->expire_leases();
      bool held = false;
      const auto now = c->job_status(spec.name());  // named: a temporary in the range-init would dangle
      ASSERT_TRUE(now.ok()) << now.status();
      for (const auto& task : now->tasks()) held = held || task.state() == LEASED;
      expired_once = !held;
      holding_for_expiry = held;
      return;
    }
    *what = "lease";
    auto r = lease_and_compute(*c, "w1", &cache);
    if (!r.ok()) {
      accepted(r.status(), *what);
      return;
    }
    if (!r->has_value()) {
      *what = "runner step (nothing to lease)";
      c->step();
      return;
    }
    const CompleteRequest& result = **r;
    *what = "lease " + result.task_id();
    if (!failed_once) {
      FailRequest f;
      f.set_worker_id("w1");
      f.set_task_id(result.task_id());
      f.set_attempt(result.attempt());
      f.set_error("injected failure");
      *what = "fail " + f.task_id();
      // Sent again, as the worker does, until taken; the lease is held meanwhile.
      for (int k = 0; k < 3 && !failed_once; ++k) failed_once = accepted(c->fail(f), *what);
      return;
    }
    if (!expired_once) {  // the worker goes silent with this lease: it must expire
      holding_for_expiry = true;
      return;
    }
    pending = result;
  }
};

class CoreLifecycle : public Core, public ::testing::WithParamInterface<std::string> {
 protected:
  JobSpec spec_for(const std::string& kind) {
    if (kind == "rtn") return rtn("j");
    if (kind == "gptq") return gptq("j");
    if (kind == "gptq_kept") {  // boundaries kept on the worker between checkpoints
      JobSpec s = gptq("j");
      s.mutable_calibrate()->set_checkpoint_every(3);
      return s;
    }
    return evaluation("j");
  }
};

TEST_P(CoreLifecycle, EveryCommitCanFailAndMemoryNeverRunsAhead) {
  // The run without failures: the reference bytes and the number of commits.
  Lifecycle ref(this, spec_for(GetParam()), 0);
  ref.run();
  ASSERT_FALSE(HasFatalFailure());
  const int commits = ref.store->commits();
  ASSERT_GT(commits, 10);
  if (GetParam() == "eval") {
    EXPECT_GT(ref.final_status.predictions(), 0);
    EXPECT_GT(ref.final_status.perplexity(), 1.0);
  } else {
    EXPECT_FALSE(ref.output.empty());
  }
  EXPECT_EQ(blob_count(*ref.store), 0u) << "the deleted job left blobs behind";

  for (int k = 1; k <= commits; ++k) {
    fs::remove_all(lab_.dir() / "out/j");
    Lifecycle run(this, ref.spec, k);
    run.run();
    ASSERT_FALSE(HasFatalFailure()) << "commit " << k << " of " << commits << " failing";
    EXPECT_EQ(run.output, ref.output) << "commit " << k << " failing changed the output";
    EXPECT_EQ(run.final_status.perplexity(), ref.final_status.perplexity()) << "commit " << k;
    EXPECT_EQ(blob_count(*run.store), 0u) << "commit " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Jobs, CoreLifecycle, ::testing::Values("rtn", "gptq", "gptq_kept", "eval"),
                         [](const auto& info) { return info.param; });


// Runs a job with one well-behaved in-process worker until it ends; its final status.
absl::StatusOr<JobStatus> run_to_end(Coordinator& c, FakeClock& clock, const std::string& name) {
  for (int i = 0; i < 1000; ++i) {
    SP_ASSIGN_OR_RETURN(const JobStatus s, c.job_status(name));
    if (s.state() == SUCCEEDED || s.state() == FAILED || s.state() == CANCELLED) return s;
    if (s.state() != RUNNING || !s.imported()) {
      c.step();
      clock.advance(100);
      continue;
    }
    SP_ASSIGN_OR_RETURN(auto done, lease_and_compute(c, "w1"));
    if (!done) {
      c.step();
      continue;
    }
    SP_RETURN_IF_ERROR(c.complete(*done));
  }
  return absl::DeadlineExceededError(name + " did not end in 1000 steps");
}

size_t live_blobs(Coordinator& c) { return c.blobs().census()->first; }

// An evaluation's last task must bring its perplexity: a result without predictions is
// refused, nothing of it is recorded (the task stays leased, memory equals the store), and
// the job does not end without a perplexity.
TEST_F(Core, AnEvaluationResultWithoutPredictionsIsRefusedAndNothingIsRecorded) {
  auto store = std::make_shared<MemoryStateStore>();
  auto c = open(store);
  ASSERT_TRUE(c->register_worker(registration("w1")).ok());
  ASSERT_TRUE(c->submit(evaluation("e")).ok());
  bool refused = false;
  for (int i = 0; i < 500 && !refused; ++i) {
    auto s = c->job_status("e");
    ASSERT_TRUE(s.ok());
    ASSERT_NE(s->state(), SUCCEEDED) << "the evaluation ended before its head task was tried";
    if (!s->imported()) {
      c->step();
      continue;
    }
    auto done = lease_and_compute(*c, "w1");
    ASSERT_TRUE(done.ok()) << done.status();
    if (!done->has_value()) {
      c->step();
      continue;
    }
    CompleteRequest r = **done;
    if (r.predictions() == 0) {
      ASSERT_TRUE(c->complete(r).ok());
      continue;
    }
    CompleteRequest bad = r;
    bad.set_predictions(0);
    const absl::Status st = c->complete(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
    EXPECT_EQ(c->memory_state(), c->durable_state());
    const auto after = c->job_status("e");
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->state(), RUNNING);
    for (const auto& t : after->tasks())
      if (t.id() == r.task_id()) {
        EXPECT_EQ(t.state(), LEASED) << "a refused result changed the task";
      }
    bad = r;
    bad.set_nll(std::nan(""));
    EXPECT_TRUE(absl::IsInvalidArgument(c->complete(bad)));
    ASSERT_TRUE(c->complete(r).ok());  // the real result is still taken
    refused = true;
  }
  ASSERT_TRUE(refused);
  auto end = run_to_end(*c, clock_, "e");
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->state(), SUCCEEDED);
  EXPECT_GT(end->perplexity(), 1.0);
}

// delete takes only finished or cancelled jobs; a queued or running one is refused and
// kept whole; an unknown name is NOT_FOUND.
TEST_F(Core, DeleteRefusesAJobThatIsStillRunning) {
  auto c = open(std::make_shared<MemoryStateStore>());
  ASSERT_TRUE(c->register_worker(registration("w1")).ok());
  ASSERT_TRUE(c->submit(rtn("r")).ok());
  auto queued = c->delete_job("r");
  EXPECT_TRUE(absl::IsFailedPrecondition(queued.status())) << queued.status();
  EXPECT_NE(queued.status().message().find("cancel"), std::string::npos) << queued.status();
  c->step();  // imports
  auto running = c->delete_job("r");
  EXPECT_TRUE(absl::IsFailedPrecondition(running.status())) << running.status();
  EXPECT_EQ(c->job_status("r")->state(), RUNNING);
  EXPECT_TRUE(absl::IsNotFound(c->delete_job("nope").status()));
  ASSERT_TRUE(c->cancel("r").ok());
  auto gone = c->delete_job("r");
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_EQ(gone->state(), CANCELLED);
  EXPECT_TRUE(absl::IsNotFound(c->job_status("r").status()));
  EXPECT_EQ(live_blobs(*c), 0u);
  EXPECT_EQ(c->memory_state(), c->durable_state());
  // Its id is never given out again.
  auto next = c->submit(rtn("r2"));
  ASSERT_TRUE(next.ok());
  EXPECT_NE(next->id(), gone->id());
}

// With a retention time, a finished job is deleted (with all it owns) once it has been
// finished that long — not before.
TEST_F(Core, FinishedJobsAreDeletedAfterTheirRetention) {
  auto store = std::make_shared<MemoryStateStore>();
  CoordinatorOptions o = lab_.options();
  o.store = store;
  o.retention_ms = 3'600'000;
  auto opened = Coordinator::open(o, clock_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  auto& c = **opened;
  ASSERT_TRUE(c.register_worker(registration("w1")).ok());
  ASSERT_TRUE(c.submit(rtn("r")).ok());
  auto end = run_to_end(c, clock_, "r");
  ASSERT_TRUE(end.ok()) << end.status();
  ASSERT_EQ(end->state(), SUCCEEDED);
  EXPECT_GT(live_blobs(c), 0u);
  clock_.advance(3'600'000 - 1'000);
  c.expire_leases();
  EXPECT_TRUE(c.job_status("r").ok()) << "deleted before its retention";
  clock_.advance(2'000);
  c.expire_leases();
  EXPECT_TRUE(absl::IsNotFound(c.job_status("r").status()));
  EXPECT_EQ(live_blobs(c), 0u);
  EXPECT_EQ(c.memory_state(), c.durable_state());
  EXPECT_TRUE(fs::exists(lab_.dir() / "out/r")) << "the output checkpoint is the user's: never deleted";
}

// Two jobs on the same model share its imported shards: deleting one keeps every blob the
// other owns, readable whole; deleting both leaves nothing.
TEST_F(Core, BlobsSharedWithALiveJobSurviveDeletingTheOther) {
  auto store = std::make_shared<MemoryStateStore>();
  auto c = open(store);
  ASSERT_TRUE(c->register_worker(registration("w1")).ok());
  ASSERT_TRUE(c->submit(rtn("a")).ok());
  ASSERT_TRUE(c->submit(rtn("b")).ok());
  for (const char* j : {"a", "b"}) {
    auto end = run_to_end(*c, clock_, j);
    ASSERT_TRUE(end.ok()) << end.status();
    ASSERT_EQ(end->state(), SUCCEEDED);
  }
  const std::string b_id = c->job_status("b")->id();
  const size_t both = live_blobs(*c);
  size_t shared = 0;
  for_each_blob(*store, [&](const std::string& d) { shared += c->blobs().owners(d)->size() == 2; });
  EXPECT_GT(shared, 0u) << "the two jobs share no blob: the test proves nothing";
  ASSERT_TRUE(c->delete_job("a").ok());
  const size_t one = live_blobs(*c);
  EXPECT_LE(one, both);
  EXPECT_GE(one, shared);
  size_t checked = 0;
  for_each_blob(*store, [&](const std::string& d) {
    const auto owners = c->blobs().owners(d);
    EXPECT_TRUE(owners.ok() && *owners == std::vector<std::string>{b_id}) << d;
    EXPECT_TRUE(c->blobs().read_all(d).ok()) << d;
    ++checked;
  });
  EXPECT_EQ(checked, one);
  EXPECT_EQ(c->memory_state(), c->durable_state());
  ASSERT_TRUE(c->delete_job("b").ok());
  EXPECT_EQ(live_blobs(*c), 0u);
  EXPECT_EQ(c->memory_state(), c->durable_state());
}

std::map<std::string, TaskState> task_states(Coordinator& c, const std::string& job) {
  std::map<std::string, TaskState> out;
  const auto s = c.job_status(job);  // named: a temporary in the range-init would dangle
  for (const auto& t : s->tasks()) out[t.id().substr(t.id().rfind('/') + 1)] = t.state();
  return out;
}

bool has_event(Coordinator& c, const std::string& job, const std::string& words) {
  const auto events = c.events(job);
  for (const auto& e : *events)
    if (e.message().find(words) != std::string::npos) return true;
  return false;
}

// calibrate.checkpoint_every: the boundaries between checkpoints stay on the worker that
// made them — only it runs their readers, none of them reaches the store. When that worker
// is lost, or fails a reader (its cache lost the boundary), the chain runs again from the
// last boundary that is still somewhere, on another worker; the output is byte-identical
// to a job that uploaded every boundary.
TEST_F(Core, KeptBoundariesStayOnTheirWorkerAndALossRunsTheChainAgain) {
  auto c = open(std::make_shared<MemoryStateStore>());
  ASSERT_TRUE(c->register_worker(registration("w1")).ok());
  ASSERT_TRUE(c->register_worker(registration("w2")).ok());
  ASSERT_TRUE(c->submit(gptq("ref")).ok());
  auto ref = run_to_end(*c, clock_, "ref");
  ASSERT_TRUE(ref.ok()) << ref.status();
  ASSERT_EQ(ref->state(), SUCCEEDED);

  JobSpec spec = gptq("k");
  spec.mutable_calibrate()->set_checkpoint_every(4);  // stories260k's 5 layers: 0-2 keep, 3 uploads
  ASSERT_TRUE(c->submit(spec).ok());
  for (int i = 0; i < 20 && !c->job_status("k")->imported(); ++i) c->step();
  ASSERT_TRUE(c->job_status("k")->imported());
  const std::string job = c->job_status("k")->id();
  WorkerCache w1, w2;
  auto run = [&](const std::string& worker, WorkerCache* cache, const std::string& expect) {
    auto r = lease_and_compute(*c, worker, cache);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(r->has_value()) << worker << " got nothing, expected " << expect;
    ASSERT_EQ((*r)->task_id(), job + "/" + expect);
    ASSERT_TRUE(c->complete(**r).ok());
  };
  auto nothing_for = [&](const std::string& worker, WorkerCache* cache) {
    auto r = lease_and_compute(*c, worker, cache);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(r->has_value()) << worker << " was given " << (*r)->task_id();
  };
  run("w1", &w1, "layer.0");
  ASSERT_EQ(w1.size(), 1u);
  EXPECT_FALSE(*c->blobs().contains(w1.begin()->first)) << "a kept boundary was uploaded";
  nothing_for("w2", &w2);  // layer.1 reads what w1 keeps
  run("w1", &w1, "layer.1");
  EXPECT_EQ(c->memory_state(), c->durable_state());

  // w1 goes silent while w2 stays: past a lease's TTL, what w1 kept is lost.
  for (int i = 0; i < 9; ++i) {
    clock_.advance(1'000);
    HeartbeatRequest hb;
    hb.set_worker_id("w2");
    ASSERT_TRUE(c->heartbeat(hb).ok());
    c->expire_leases();
  }
  EXPECT_EQ(task_states(*c, "k")["layer.0"], DONE) << "rewound before a lease would have expired";
  for (int i = 0; i < 2; ++i) {
    clock_.advance(1'000);
    HeartbeatRequest hb;
    hb.set_worker_id("w2");
    ASSERT_TRUE(c->heartbeat(hb).ok());
    c->expire_leases();
  }
  auto states = task_states(*c, "k");
  EXPECT_EQ(states["layer.0"], READY);
  EXPECT_EQ(states["layer.1"], WAITING);
  EXPECT_EQ(states["layer.2"], WAITING);
  EXPECT_EQ(c->memory_state(), c->durable_state());
  EXPECT_TRUE(has_event(*c, job, "kept on worker w1 are lost")) << "no event says why layer.0 runs again";

  run("w2", &w2, "layer.0");
  const WorkerCache after0 = w2;
  run("w2", &w2, "layer.1");
  // w2's cache loses layer.1's boundary: its reader fails there, and layer.1 runs again.
  for (const auto& [digest, bytes] : after0) w2.erase(digest);
  ASSERT_EQ(w2.size(), 1u);
  const std::string layer1_out = w2.begin()->first;
  w2.clear();
  w2.insert(after0.begin(), after0.end());
  LeaseRequest lr;
  lr.set_worker_id("w2");
  lr.set_free_memory(8ull << 30);
  auto lease = c->lease(lr);
  ASSERT_TRUE(lease.ok() && lease->has_task()) << lease.status();
  ASSERT_EQ(lease->task_id(), job + "/layer.2");
  FailRequest f;
  f.set_worker_id("w2");
  f.set_task_id(lease->task_id());
  f.set_attempt(lease->attempt());
  f.set_error(fmt::format("input __activations__ (blob {}) is not in the store", layer1_out));
  ASSERT_TRUE(c->fail(f).ok());
  states = task_states(*c, "k");
  EXPECT_EQ(states["layer.0"], DONE);
  EXPECT_EQ(states["layer.1"], READY);
  EXPECT_EQ(states["layer.2"], WAITING);
  EXPECT_EQ(c->memory_state(), c->durable_state());
  EXPECT_TRUE(has_event(*c, job, "layer.1: the activations it kept on worker w2 are lost (layer.2 failed there)"));

  // The rest on w2.
  for (int i = 0; i < 50 && c->job_status("k")->state() != SUCCEEDED; ++i) {
    auto r = lease_and_compute(*c, "w2", &w2);
    ASSERT_TRUE(r.ok()) << r.status();
    if (r->has_value()) ASSERT_TRUE(c->complete(**r).ok());
    else c->step();
  }
  ASSERT_EQ(c->job_status("k")->state(), SUCCEEDED) << c->job_status("k")->error();
  // Every file but the manifest, whose compression record names the spec (checkpoint_every).
  auto k = output_digests("k"), r = output_digests("ref");
  ASSERT_EQ(k.erase("shardpress_manifest.json"), 1u);
  ASSERT_EQ(r.erase("shardpress_manifest.json"), 1u);
  EXPECT_EQ(k, r);
  EXPECT_TRUE(k.count("model.safetensors"));
  EXPECT_EQ(c->memory_state(), c->durable_state());
}

// The output is written while the tasks finish: after some results are DONE, a runner
// step has put them into the hidden folder; the published checkpoint is byte for byte what
// `compress` writes in one process (every file but the manifest, which names the job).
TEST_F(Core, TheOutputIsWrittenWhileTasksFinishAndIsWhatCompressWrites) {
  auto c = open(std::make_shared<MemoryStateStore>());
  ASSERT_TRUE(c->register_worker(registration("w1")).ok());
  ASSERT_TRUE(c->submit(rtn("s")).ok());
  for (int i = 0; i < 20 && !c->job_status("s")->imported(); ++i) c->step();
  const fs::path partial = lab_.dir() / "out/.s.partial";
  for (int k = 0; k < 2; ++k) {
    auto r = lease_and_compute(*c, "w1");
    ASSERT_TRUE(r.ok() && r->has_value()) << r.status();
    ASSERT_TRUE(c->complete(**r).ok());
  }
  c->step();
  ASSERT_EQ(c->job_status("s")->state(), RUNNING);
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(partial)) files += e.path().filename().string().find(".partial.") != std::string::npos;
  EXPECT_EQ(files, 1u) << "no output file is being written while the job runs";
  auto end = run_to_end(*c, clock_, "s");
  ASSERT_TRUE(end.ok()) << end.status();
  ASSERT_EQ(end->state(), SUCCEEDED);
  EXPECT_FALSE(fs::exists(partial));

  LocalCompressOptions o;
  o.settings = compress_settings(rtn("s"));
  ASSERT_TRUE(compress_model_local(lab_.dir() / "models/stories", lab_.dir() / "compressed", o).ok());
  auto job = output_digests("s");
  std::map<std::string, std::string> local;
  for (const auto& e : fs::directory_iterator(lab_.dir() / "compressed")) {
    auto bytes = read_file(e.path().string());
    local[e.path().filename().string()] = digest_hex({reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()});
  }
  ASSERT_EQ(job.erase(kManifestName), 1u);
  ASSERT_EQ(local.erase(kManifestName), 1u);
  EXPECT_EQ(job, local);
  EXPECT_TRUE(job.count("model.safetensors"));
}

}  // namespace
}  // namespace sp
