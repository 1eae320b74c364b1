// Leases, expiry, fencing and scheduling with a fake clock: no sleeps, no network. The
// scheduler proposes; the tests apply what the coordinator would commit.
#include "coordinator/task_scheduler.h"

#include "gtest/gtest.h"

namespace sp {
namespace {

using shardpress::v1::TaskRecord;
using shardpress::v1::TaskState;

TaskRecord task(const std::string& job, int i) {
  TaskRecord t;
  t.set_id(job + "/layer." + std::to_string(i));
  t.set_job_id(job);
  t.set_shard_index(i);
  t.set_state(TaskState::READY);
  return t;
}

class SchedulerTest : public ::testing::Test {
 protected:
  SchedulerTest() : s_(clock_, SchedulerOptions{1000, 3}) {
    for (int i = 0; i < 3; ++i) s_.upsert(task("job-0001", i));
  }
  // Proposes a lease and applies it (as the coordinator does after its commit).
  std::optional<TaskRecord> lease(const std::string& w, uint64_t mem = 100) {
    TaskScheduler::LeaseQuery q;
    q.leasable = [this](const TaskRecord&) { return active_; };
    q.memory_of = [this](const TaskRecord& t) { return memory_[t.shard_index()]; };
    q.affinity = [this, w](const TaskRecord& t) { return affinity_[w + t.id()]; };
    auto t = s_.choose_lease(w, mem, q);
    if (t) s_.upsert(*t);
    return t;
  }
  absl::StatusOr<TaskRecord> complete(const std::string& w, const std::string& id, uint32_t attempt) {
    auto t = s_.completion(w, id, attempt, {}, {});
    if (t.ok()) s_.upsert(*t);
    return t;
  }
  absl::StatusOr<TaskScheduler::FailOutcome> fail(const std::string& w, const std::string& id, uint32_t attempt) {
    auto f = s_.failure(w, id, attempt, "boom");
    if (f.ok()) s_.upsert(f->task);
    return f;
  }
  std::vector<TaskRecord> expire() {
    auto e = s_.expired_leases();
    s_.upsert(e);
    return e;
  }
  FakeClock clock_;
  TaskScheduler s_;
  bool active_ = true;
  std::map<int, uint64_t> memory_{{0, 10}, {1, 10}, {2, 10}};
  std::map<std::string, int> affinity_;
};

TEST_F(SchedulerTest, LeaseBumpsAttemptAndSetsDeadline) {
  auto t = lease("w1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->id(), "job-0001/layer.0");
  EXPECT_EQ(t->attempt(), 1u);
  EXPECT_EQ(t->state(), TaskState::LEASED);
  EXPECT_EQ(t->lease_deadline_ms(), clock_.now_ms() + 1000);
  EXPECT_EQ(lease("w2")->id(), "job-0001/layer.1");
}

// Nothing a proposal returns is in the scheduler until it is applied: a commit that
// fails leaves the scheduler as a restart would find it.
TEST_F(SchedulerTest, ProposalsChangeNothingUntilApplied) {
  TaskScheduler::LeaseQuery q;
  q.leasable = [](const TaskRecord&) { return true; };
  q.memory_of = [](const TaskRecord&) { return uint64_t{1}; };
  q.affinity = [](const TaskRecord&) { return 0; };
  auto proposed = s_.choose_lease("w1", 100, q);
  ASSERT_TRUE(proposed);
  EXPECT_EQ(s_.find(proposed->id())->state(), TaskState::READY);
  EXPECT_EQ(s_.choose_lease("w1", 100, q)->id(), proposed->id()) << "not leased: offered again";
  s_.upsert(*proposed);
  EXPECT_TRUE(absl::IsAborted(s_.completion("w2", proposed->id(), 1, {}, {}).status()));
  auto done = s_.completion("w1", proposed->id(), 1, {}, {});
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(s_.find(proposed->id())->state(), TaskState::LEASED);
  clock_.advance(2000);
  EXPECT_EQ(s_.expired_leases().size(), 1u);
  EXPECT_EQ(s_.expired_leases().size(), 1u) << "proposed twice, applied never";
  EXPECT_EQ(s_.find(proposed->id())->state(), TaskState::LEASED);
}

TEST_F(SchedulerTest, ExpiredLeaseReturnsToReadyAndStaleResultIsRefused) {
  auto t = lease("w1");
  clock_.advance(999);
  EXPECT_TRUE(expire().empty());
  clock_.advance(1);
  auto expired = expire();
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].state(), TaskState::READY);
  EXPECT_EQ(expired[0].last_error(), "lease of worker w1 expired (attempt 1)");
  // Re-leased to w2 under attempt 2; w1's late result (attempt 1) is refused.
  auto again = lease("w2");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id(), t->id());
  EXPECT_EQ(again->attempt(), 2u);
  auto stale = complete("w1", t->id(), 1);
  ASSERT_FALSE(stale.ok());
  EXPECT_TRUE(absl::IsAborted(stale.status()));
  EXPECT_TRUE(complete("w2", t->id(), 2).ok());
  EXPECT_EQ(s_.find(t->id())->state(), TaskState::DONE);
}

TEST_F(SchedulerTest, HeartbeatExtendsOnlyTheHolder) {
  auto t = lease("w1");
  clock_.advance(800);
  ASSERT_TRUE(s_.extend("w1", t->id(), 1).ok());
  clock_.advance(800);  // 1600 ms after the lease, 800 after the heartbeat
  EXPECT_TRUE(expire().empty());
  EXPECT_TRUE(absl::IsAborted(s_.extend("w2", t->id(), 1)));
  EXPECT_TRUE(absl::IsAborted(s_.extend("w1", t->id(), 7)));
  clock_.advance(1000);
  EXPECT_EQ(expire().size(), 1u);
  EXPECT_TRUE(absl::IsAborted(s_.extend("w1", t->id(), 1)));
}

TEST_F(SchedulerTest, OnlyTasksThatFitTheWorkersMemory) {
  memory_[0] = 500;
  memory_[1] = 500;
  auto t = lease("small", 100);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->id(), "job-0001/layer.2");
  EXPECT_FALSE(lease("small", 100).has_value());
  EXPECT_EQ(lease("big", 1000)->id(), "job-0001/layer.0");
}

TEST_F(SchedulerTest, PrefersTasksWhoseInputsTheWorkerCaches) {
  affinity_["w1job-0001/layer.2"] = 5;
  EXPECT_EQ(lease("w1")->id(), "job-0001/layer.2");
  EXPECT_EQ(lease("w2")->id(), "job-0001/layer.0");
}

TEST_F(SchedulerTest, LayersAreLeasedInOrderNotByIdText) {
  for (int i = 3; i < 12; ++i) s_.upsert(task("job-0001", i));  // "layer.10" sorts before "layer.2"
  for (int i = 3; i < 12; ++i) memory_[i] = 10;
  for (int i = 0; i < 12; ++i) {
    auto t = lease("w");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->shard_index(), i);
    ASSERT_TRUE(complete("w", t->id(), t->attempt()).ok());
  }
}

TEST_F(SchedulerTest, AWorkerHoldsAtMostFourLeases) {
  for (int i = 3; i < 10; ++i) {
    s_.upsert(task("job-0001", i));
    memory_[i] = 10;
  }
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(lease("greedy").has_value());
  EXPECT_FALSE(lease("greedy").has_value());
  EXPECT_TRUE(lease("other").has_value());
  ASSERT_TRUE(complete("greedy", "job-0001/layer.0", 1).ok());
  EXPECT_TRUE(lease("greedy").has_value());
}

TEST_F(SchedulerTest, TasksTheCallerHoldsBackAreNotLeased) {
  active_ = false;
  EXPECT_FALSE(lease("w1").has_value());
  active_ = true;
  EXPECT_TRUE(lease("w1").has_value());
}

TEST_F(SchedulerTest, FailuresUpToTheLimitThenExhausted) {
  for (uint32_t attempt = 1; attempt <= 3; ++attempt) {
    auto t = lease("w1");
    ASSERT_TRUE(t);
    ASSERT_EQ(t->id(), "job-0001/layer.0");
    ASSERT_EQ(t->attempt(), attempt);
    auto f = fail("w1", t->id(), attempt);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(f->exhausted, attempt == 3);
    EXPECT_EQ(f->task.last_error(), "boom");
  }
  EXPECT_EQ(s_.find("job-0001/layer.0")->state(), TaskState::TASK_FAILED);
  // A failed attempt cannot complete afterwards either.
  EXPECT_TRUE(absl::IsAborted(complete("w1", "job-0001/layer.0", 3).status()));
}

TEST_F(SchedulerTest, RecoveryGivesLeasesAFreshTtl) {
  auto t = lease("w1");
  clock_.advance(5000);  // the coordinator was down longer than the TTL
  auto extended = s_.fresh_leases();
  ASSERT_EQ(extended.size(), 1u);
  EXPECT_EQ(extended[0].lease_deadline_ms(), clock_.now_ms() + 1000);
  s_.upsert(extended);
  EXPECT_TRUE(expire().empty());
  EXPECT_TRUE(complete("w1", t->id(), 1).ok());  // the live worker's result counts
}

TEST_F(SchedulerTest, ReleaseWorkerAndResetUnfinished) {
  auto a = lease("w1");
  auto b = lease("w1");
  ASSERT_TRUE(complete("w1", a->id(), 1).ok());
  const auto released = s_.leases_released("w1");
  EXPECT_EQ(released.size(), 1u);  // only b was still leased
  s_.upsert(released);
  EXPECT_EQ(s_.find(b->id())->state(), TaskState::READY);
  auto c = lease("w2");
  ASSERT_TRUE(fail("w2", c->id(), c->attempt()).ok());
  auto reset = s_.unfinished_reset("job-0001");
  EXPECT_EQ(reset.size(), 2u);  // everything but the done task
  s_.upsert(reset);
  EXPECT_EQ(s_.find(a->id())->state(), TaskState::DONE);
  EXPECT_EQ(s_.find(c->id())->failures(), 0u);
}

}  // namespace
}  // namespace sp

namespace sp {
namespace {

// Calibration chains: a WAITING task is never leased; it becomes READY when its
// dependency is DONE (proposed together with that completion); resume puts tasks with
// unfinished dependencies back to WAITING; a forward task wins a tie with the layer task
// of the same shard.
TEST(SchedulerChains, DependenciesGateLeasesAndResume) {
  FakeClock clock;
  TaskScheduler s(clock, SchedulerOptions{1000, 3});
  auto make = [](const std::string& id, int shard, shardpress::v1::TaskKind kind, TaskState st,
                 const std::string& dep) {
    TaskRecord t;
    t.set_id("job-0001/" + id);
    t.set_job_id("job-0001");
    t.set_shard_index(shard);
    t.set_kind(kind);
    t.set_state(st);
    if (!dep.empty()) t.add_depends_on("job-0001/" + dep);
    return t;
  };
  s.upsert(make("layer.0", 1, shardpress::v1::CALIBRATE_STAGE, TaskState::READY, ""));
  s.upsert(make("fwd.0", 1, shardpress::v1::FORWARD_LAYER, TaskState::READY, ""));
  s.upsert(make("layer.1", 2, shardpress::v1::CALIBRATE_STAGE, TaskState::WAITING, "fwd.0"));
  TaskScheduler::LeaseQuery q;
  q.leasable = [](const TaskRecord&) { return true; };
  q.memory_of = [](const TaskRecord&) { return uint64_t{1}; };
  q.affinity = [](const TaskRecord&) { return 0; };
  auto lease = [&](const std::string& w) {
    auto t = s.choose_lease(w, 10, q);
    if (t) s.upsert(*t);
    return t;
  };
  auto a = lease("w1");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->id(), "job-0001/fwd.0") << "the forward task feeds the pipeline: it goes first";
  auto b = lease("w2");
  EXPECT_EQ(b->id(), "job-0001/layer.0");
  EXPECT_FALSE(lease("w3")) << "layer.1 waits for fwd.0";
  auto done = s.completion("w1", a->id(), a->attempt(), {}, {});
  ASSERT_TRUE(done.ok());
  auto promoted = s.promotions("job-0001", *done);
  ASSERT_EQ(promoted.size(), 1u);
  EXPECT_EQ(promoted[0].id(), "job-0001/layer.1");
  EXPECT_EQ(promoted[0].state(), TaskState::READY);
  s.upsert(*done);
  s.upsert(promoted);
  // Resume after a failure: a task whose dependency is not done goes back to WAITING.
  s.upsert(make("layer.2", 3, shardpress::v1::CALIBRATE_STAGE, TaskState::READY, "fwd.1"));
  for (const auto& t : s.unfinished_reset("job-0001")) {
    if (t.id() == "job-0001/layer.2") {
      EXPECT_EQ(t.state(), TaskState::WAITING);
    }
    if (t.id() == "job-0001/layer.1") {
      EXPECT_EQ(t.state(), TaskState::READY);
    }
  }
}

}  // namespace
}  // namespace sp
