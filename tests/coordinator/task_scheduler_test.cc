// Leases, expiry, fencing and scheduling with a fake clock: no sleeps, no network.
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
    s_.set_job_active("job-0001", true);
  }
  std::optional<TaskRecord> lease(const std::string& w, uint64_t mem = 100) {
    return s_.lease(w, mem, [this](const TaskRecord& t) { return memory_[t.shard_index()]; },
                    [this, w](const TaskRecord& t) { return affinity_[w + t.id()]; });
  }
  FakeClock clock_;
  TaskScheduler s_;
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

TEST_F(SchedulerTest, ExpiredLeaseReturnsToReadyAndStaleResultIsRefused) {
  auto t = lease("w1");
  clock_.advance(999);
  EXPECT_TRUE(s_.expire().empty());
  clock_.advance(1);
  auto expired = s_.expire();
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].state(), TaskState::READY);
  // Re-leased to w2 under attempt 2; w1's late result (attempt 1) is refused.
  auto again = lease("w2");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id(), t->id());
  EXPECT_EQ(again->attempt(), 2u);
  auto stale = s_.complete("w1", t->id(), 1, {}, {});
  ASSERT_FALSE(stale.ok());
  EXPECT_TRUE(absl::IsAborted(stale.status()));
  EXPECT_TRUE(s_.complete("w2", t->id(), 2, {}, {}).ok());
  EXPECT_EQ(s_.find(t->id())->state(), TaskState::DONE);
}

TEST_F(SchedulerTest, HeartbeatExtendsOnlyTheHolder) {
  auto t = lease("w1");
  clock_.advance(800);
  ASSERT_TRUE(s_.heartbeat("w1", t->id(), 1).ok());
  clock_.advance(800);  // 1600 ms after the lease, 800 after the heartbeat
  EXPECT_TRUE(s_.expire().empty());
  EXPECT_TRUE(absl::IsAborted(s_.heartbeat("w2", t->id(), 1).status()));
  EXPECT_TRUE(absl::IsAborted(s_.heartbeat("w1", t->id(), 7).status()));
  clock_.advance(1000);
  EXPECT_EQ(s_.expire().size(), 1u);
  EXPECT_TRUE(absl::IsAborted(s_.heartbeat("w1", t->id(), 1).status()));
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
    ASSERT_TRUE(s_.complete("w", t->id(), t->attempt(), {}, {}).ok());
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
  ASSERT_TRUE(s_.complete("greedy", "job-0001/layer.0", 1, {}, {}).ok());
  EXPECT_TRUE(lease("greedy").has_value());
}

TEST_F(SchedulerTest, InactiveJobsAreNotLeased) {
  s_.set_job_active("job-0001", false);
  EXPECT_FALSE(lease("w1").has_value());
  s_.set_job_active("job-0001", true);
  EXPECT_TRUE(lease("w1").has_value());
}

TEST_F(SchedulerTest, FailuresUpToTheLimitThenExhausted) {
  for (uint32_t attempt = 1; attempt <= 3; ++attempt) {
    auto t = lease("w1");
    ASSERT_TRUE(t);
    ASSERT_EQ(t->id(), "job-0001/layer.0");
    ASSERT_EQ(t->attempt(), attempt);
    auto f = s_.fail("w1", t->id(), attempt, "boom");
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(f->exhausted, attempt == 3);
    EXPECT_EQ(f->task.last_error(), "boom");
  }
  EXPECT_EQ(s_.find("job-0001/layer.0")->state(), TaskState::TASK_FAILED);
  // A failed attempt cannot complete afterwards either.
  EXPECT_TRUE(absl::IsAborted(s_.complete("w1", "job-0001/layer.0", 3, {}, {}).status()));
}

TEST_F(SchedulerTest, RecoveryGivesLeasesAFreshTtl) {
  auto t = lease("w1");
  clock_.advance(5000);  // the coordinator was down longer than the TTL
  auto extended = s_.extend_all_leases();
  ASSERT_EQ(extended.size(), 1u);
  EXPECT_EQ(extended[0].lease_deadline_ms(), clock_.now_ms() + 1000);
  EXPECT_TRUE(s_.expire().empty());
  EXPECT_TRUE(s_.complete("w1", t->id(), 1, {}, {}).ok());  // the live worker's result counts
}

TEST_F(SchedulerTest, ReleaseWorkerAndResetUnfinished) {
  auto a = lease("w1");
  auto b = lease("w1");
  ASSERT_TRUE(s_.complete("w1", a->id(), 1, {}, {}).ok());
  EXPECT_EQ(s_.release_worker("w1").size(), 1u);  // only b was still leased
  EXPECT_EQ(s_.find(b->id())->state(), TaskState::READY);
  auto c = lease("w2");
  ASSERT_TRUE(s_.fail("w2", c->id(), c->attempt(), "x").ok());
  auto reset = s_.reset_unfinished("job-0001");
  EXPECT_EQ(reset.size(), 2u);  // everything but the done task
  EXPECT_EQ(s_.find(a->id())->state(), TaskState::DONE);
  EXPECT_EQ(s_.find(c->id())->failures(), 0u);
}

}  // namespace
}  // namespace sp

namespace sp {
namespace {

// Calibration chains: a WAITING task is never leased; it becomes READY when its
// dependency is DONE; resume puts tasks with unfinished dependencies back to WAITING;
// a forward task wins a tie with the layer task of the same shard.
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
  s.set_job_active("job-0001", true);
  auto mem = [](const TaskRecord&) { return uint64_t{1}; };
  auto none = [](const TaskRecord&) { return 0; };
  auto a = s.lease("w1", 10, mem, none);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->id(), "job-0001/fwd.0") << "the forward task feeds the pipeline: it goes first";
  auto b = s.lease("w2", 10, mem, none);
  EXPECT_EQ(b->id(), "job-0001/layer.0");
  EXPECT_FALSE(s.lease("w3", 10, mem, none)) << "layer.1 waits for fwd.0";
  EXPECT_TRUE(s.promote("job-0001").empty());
  ASSERT_TRUE(s.complete("w1", a->id(), a->attempt(), {}, {}).ok());
  auto promoted = s.promote("job-0001");
  ASSERT_EQ(promoted.size(), 1u);
  EXPECT_EQ(promoted[0].id(), "job-0001/layer.1");
  EXPECT_EQ(promoted[0].state(), TaskState::READY);
  // Resume after a failure: a task whose dependency is not done goes back to WAITING.
  s.upsert(make("layer.2", 3, shardpress::v1::CALIBRATE_STAGE, TaskState::READY, "fwd.1"));
  for (const auto& t : s.reset_unfinished("job-0001")) {
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
