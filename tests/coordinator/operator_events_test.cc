// What an operator sees (issue 11, fault 8), on a fake clock: a worker that goes silent is
// announced in the event log of every job whose tasks it holds and in the log; its
// leases then expire naming it; it is forgotten after --forget-workers-after (for good:
// a restart does not bring it back); a coordinator restart is an event of every
// unfinished job; every event is a log line.
#include <chrono>
#include <filesystem>
#include <thread>

#include "tests/coordinator/test_lab.h"

namespace sp {
namespace {

using namespace shardpress::v1;  // NOLINT

class OperatorEvents : public ::testing::Test {
 protected:
  std::unique_ptr<Coordinator> open() {
    CoordinatorOptions o = lab_.options();
    o.heartbeat_interval_ms = 1'000;  // alive: seen within 3 s
    o.lease_ttl_ms = 10'000;
    o.forget_workers_after_ms = 60'000;
    o.log = [this](const std::string& line) {
      std::lock_guard lock(mu_);
      log_.push_back(line);
    };
    auto c = Coordinator::open(o, clock_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }
  bool logged(const std::string& part) {
    std::lock_guard lock(mu_);
    for (const auto& l : log_)
      if (l.find(part) != std::string::npos) return true;
    return false;
  }
  std::string events(Coordinator& c, const std::string& job) {
    std::string all;
    const auto ev = c.events(job);  // named: a temporary in the range-init would dangle
    for (const auto& e : *ev) all += e.message() + "\n";
    return all;
  }
  test::CoordinatorLab lab_;
  FakeClock clock_;
  std::mutex mu_;
  std::vector<std::string> log_;
};

TEST_F(OperatorEvents, ASilentWorkerIsAnnouncedItsLeasesExpireAndItIsForgotten) {
  auto c = open();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->submit(lab_.job("s", "s")).ok());
  c->start();
  for (int i = 0; i < 400 && !c->job_status("s")->imported(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(c->job_status("s")->imported());
  RegisterRequest reg;
  reg.set_worker_id("w1");
  reg.set_host("lab1");
  reg.set_memory(1ull << 30);
  ASSERT_TRUE(c->register_worker(reg).ok());
  LeaseRequest lr;
  lr.set_worker_id("w1");
  lr.set_free_memory(1ull << 30);
  auto leased = c->lease(lr);
  ASSERT_TRUE(leased.ok() && leased->has_task());
  EXPECT_TRUE(logged("job-0001: job-0001/layer.0 leased to worker w1 (attempt 1)"));

  clock_.advance(4'000);  // silent for more than 3 heartbeat intervals
  c->expire_leases();
  EXPECT_NE(events(*c, "s").find("worker w1 stopped responding (last seen 4.0 s ago); layer.0 goes back to the queue "
                                 "when its lease expires"),
            std::string::npos)
      << events(*c, "s");
  EXPECT_TRUE(logged("worker w1 (lab1) stopped responding (last seen 4.0 s ago)"));
  clock_.advance(7'000);  // the lease (10 s) expires
  c->expire_leases();
  EXPECT_NE(events(*c, "s").find("job-0001/layer.0: lease of worker w1 expired (attempt 1), task is ready again"),
            std::string::npos)
      << events(*c, "s");

  HeartbeatRequest hb;
  hb.set_worker_id("w1");
  ASSERT_TRUE(c->heartbeat(hb).ok());
  EXPECT_TRUE(logged("worker w1 is back (silent for 11.0 s)"));
  clock_.advance(30'000);
  c->expire_leases();
  EXPECT_EQ(c->workers().size(), 1u) << "silent for 30 s: still listed, not alive";
  EXPECT_FALSE(c->workers()[0].alive());
  clock_.advance(31'000);
  c->expire_leases();
  EXPECT_TRUE(c->workers().empty());
  EXPECT_TRUE(logged("forgot worker w1 (not seen for 61 s; --forget-workers-after)"));

  c->stop();
  c.reset();
  auto again = open();
  ASSERT_NE(again, nullptr);
  EXPECT_TRUE(again->workers().empty()) << "forgotten for good";
  EXPECT_NE(events(*again, "s").find("coordinator restarted; 0 leases kept"), std::string::npos) << events(*again, "s");
  EXPECT_TRUE(logged("recovered 1 job (1 unfinished), 0 leases, 0 known workers"));
  EXPECT_TRUE(logged("job-0001: submitted 's'"));
}

}  // namespace
}  // namespace sp
