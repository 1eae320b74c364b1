// The job view: what `status`, `watch` and `submit --wait` print (issue 11: a watch in a
// short terminal scrolled the header away; the ETA counted only the tasks imported so
// far; the per-task error was only in -o json; 64-bit counters came out as strings).
#include "cli/job_view.h"

#include <algorithm>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace sp::cli {
namespace {

using namespace shardpress::v1;  // NOLINT

JobStatus job_with_tasks(int n) {
  JobStatus j;
  j.set_id("job-0007");
  j.mutable_spec()->set_name("big");
  j.set_state(RUNNING);
  j.set_phase("compressing");
  j.set_model_dir("/models/m");
  j.set_output_dir("/out/m");
  j.set_imported(true);
  j.set_started_ms(1'000);
  j.set_now_ms(11'000);
  j.set_tasks_total(static_cast<uint32_t>(n));
  j.set_bytes_total(uint64_t{1} << 40);  // beyond 32 bits
  for (int i = 0; i < n; ++i) {
    TaskStatus* t = j.add_tasks();
    t->set_id("job-0007/layer." + std::to_string(i));
    t->set_state(i < n / 2 ? DONE : READY);
    t->set_attempt(1);
  }
  j.set_tasks_done(static_cast<uint32_t>(n / 2));
  j.set_bytes_done(uint64_t{1} << 39);
  j.mutable_tasks(n - 3)->set_state(LEASED);
  j.mutable_tasks(n - 3)->set_worker_id("lab3-1234");
  j.mutable_tasks(n - 2)->set_last_error("model.layers.62.mlp.down_proj.weight: element 5 is nan: the weights hold NaN");
  return j;
}

int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

TEST(JobView, AShortTerminalKeepsTheHeaderAndTheTasksWorthSeeing) {
  const JobStatus j = job_with_tasks(64);
  const std::string full = render_job(j, true);
  EXPECT_GT(lines(full), 64);
  for (int rows : {9, 12, 20}) {
    const std::string v = render_job(j, true, rows);
    EXPECT_LE(lines(v), rows) << v;
    EXPECT_EQ(v.rfind("job       job-0007 (big)  RUNNING  compressing", 0), 0u) << v;
    EXPECT_NE(v.find("progress  ["), std::string::npos) << v;
    EXPECT_NE(v.find("layer.61"), std::string::npos) << "the running task is kept: " << v;
    EXPECT_NE(v.find("layer.62"), std::string::npos) << "the task with an error is kept: " << v;
    EXPECT_NE(v.find("more tasks not shown (32 done)"), std::string::npos) << v;
  }
  EXPECT_EQ(render_job(j, true, 200), full);  // room for everything: nothing left out
}

TEST(JobView, ErrorsGetAColumnAndTheEtaWaitsForTheImport) {
  JobStatus j = job_with_tasks(6);
  const std::string v = render_job(j, true);
  EXPECT_NE(v.find("ERROR"), std::string::npos);
  EXPECT_NE(v.find("model.layers.62.mlp.down_proj.weight: element 5 is nan"), std::string::npos) << v;
  EXPECT_NE(v.find(", ETA "), std::string::npos);
  j.set_imported(false);  // still importing: the totals are what is planned so far
  const std::string importing = render_job(j, false);
  EXPECT_NE(importing.find("3/6 tasks planned so far"), std::string::npos) << importing;
  EXPECT_NE(importing.find("ETA once imported"), std::string::npos) << importing;
  JobStatus clean = job_with_tasks(6);
  clean.mutable_tasks(4)->clear_last_error();
  EXPECT_EQ(render_job(clean, true).find("ERROR"), std::string::npos) << "no errors, no column";
}

TEST(JobView, JsonHas64BitCountersAsNumbersAndEnumsByName) {
  const auto j = nlohmann::json::parse(to_json(job_with_tasks(4)));
  EXPECT_TRUE(j["bytes_total"].is_number_unsigned()) << j["bytes_total"];
  EXPECT_EQ(j["bytes_total"].get<uint64_t>(), uint64_t{1} << 40);
  EXPECT_TRUE(j["started_ms"].is_number_integer());
  EXPECT_EQ(j["state"], "RUNNING");
  EXPECT_EQ(j["tasks"][0]["state"], "DONE");
  EXPECT_EQ(j["perplexity"], 0.0);  // defaults are present
  EXPECT_EQ(j["spec"]["name"], "big");
}

}  // namespace
}  // namespace sp::cli
