// Job names refer to one job (issue 11): a second job of a name is refused at submit; a
// name that older state holds twice is refused as ambiguous, listing the ids; a removed
// job's id is never given out again.
#include "coordinator/rocksdb_store.h"
#include "fmt/format.h"
#include "tests/coordinator/test_lab.h"

namespace sp {
namespace {

using namespace shardpress::v1;  // NOLINT

class JobNames : public ::testing::Test {
 protected:
  CoordinatorOptions options() { return lab_.options(); }
  JobSpec spec(const std::string& name, const std::string& out) { return lab_.job(name, out); }
  test::CoordinatorLab lab_;
  const test::TempDir& dir_ = lab_.dir();
  SystemClock clock_;
};

TEST_F(JobNames, ANameIsTakenOnceAndARemovedIdIsNotReused) {
  auto c = Coordinator::open(options(), clock_);
  ASSERT_TRUE(c.ok()) << c.status();
  auto first = (*c)->submit(spec("stories", "a"));
  ASSERT_TRUE(first.ok()) << first.status();
  auto again = (*c)->submit(spec("stories", "b"));
  ASSERT_TRUE(absl::IsAlreadyExists(again.status())) << again.status();
  EXPECT_NE(std::string(again.status().message()).find("a job named 'stories' exists already (job-0001, queued)"),
            std::string::npos)
      << again.status();
  ASSERT_TRUE((*c)->submit(spec("other", "c")).ok());
  EXPECT_FALSE((*c)->delete_job("stories").ok()) << "a queued job is cancelled first";
  ASSERT_TRUE((*c)->cancel("job-0002").ok());
  ASSERT_TRUE((*c)->delete_job("other").ok());
  EXPECT_TRUE(absl::IsNotFound((*c)->job_status("job-0002").status()));
  EXPECT_TRUE((*c)->events("job-0002").status().code() == absl::StatusCode::kNotFound);
  c->reset();
  auto reopened = Coordinator::open(options(), clock_);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_TRUE(absl::IsNotFound((*reopened)->job_status("job-0002").status())) << "removed for good";
  auto next = (*reopened)->submit(spec("third", "d"));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->id(), "job-0003") << "job-0002's id (and its task ids) are never reused";
}

TEST_F(JobNames, ANameThatOlderStateHoldsTwiceIsAmbiguous) {
  {
    auto store = RocksStateStore::open(dir_ / "data/state");
    ASSERT_TRUE(store.ok()) << store.status();
    StateStore::Batch b;
    for (int i = 1; i <= 2; ++i) {
      JobRecord j;
      j.set_seq(static_cast<uint64_t>(i));
      j.set_id(fmt::format("job-{:04d}", i));
      *j.mutable_spec() = spec("twice", fmt::format("t{}", i));
      j.set_state(SUCCEEDED);
      std::string v;
      j.SerializeToString(&v);
      b.put(Table::kJobs, j.id(), v);
    }
    ASSERT_TRUE((*store)->commit(b, true).ok());
  }
  auto c = Coordinator::open(options(), clock_);
  ASSERT_TRUE(c.ok()) << c.status();
  for (auto st : {(*c)->job_status("twice").status(), (*c)->cancel("twice").status(), (*c)->resume("twice").status(),
                  (*c)->events("twice").status(), (*c)->delete_job("twice").status()}) {
    ASSERT_TRUE(absl::IsFailedPrecondition(st)) << st;
    EXPECT_NE(std::string(st.message()).find("several jobs are named 'twice' (job-0001, job-0002): give the job id"),
              std::string::npos)
        << st;
  }
  EXPECT_TRUE((*c)->job_status("job-0002").ok());
  EXPECT_EQ((*c)->submit(spec("fresh", "f"))->id(), "job-0003");
}

}  // namespace
}  // namespace sp
