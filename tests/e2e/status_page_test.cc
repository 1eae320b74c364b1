// The status page in a real browser: a coordinator with a token and two workers on
// 127.0.0.1 run a job while headless Chromium (Debian's chromium + chromium-driver, driven
// by tests/e2e/browser.py) signs in and reads the rendered page: the job and its progress
// advancing, the workers, a task whose worker was killed with its lease's error, the event
// log. A missing or wrong token gets the login form and no data. The screenshot is saved
// where the test log says.
#include <regex>
#include <set>

#include "fmt/format.h"
#include "tests/e2e/cluster.h"

namespace sp {
namespace {

class StatusPageCluster : public Cluster {
 protected:
  // Runs a Python helper of this folder with `args` (no shell: arguments pass as they are).
  static test::CliResult python(const std::string& script, std::vector<std::string> args) {
    args.insert(args.begin(), {"python3", std::string(SP_PROJECT_DIR) + "/tests/e2e/" + script});
    return test::run_program("/usr/bin/env", args);
  }
  // Runs the browser on `url`; skips the test (with Chromium's reason) where it cannot start.
  json browse(const std::string& url, std::vector<std::string> args) {
    args.insert(args.begin(), url);
    const test::CliResult r = python("browser.py", args);
    if (r.exit_code == 3) {
      skip_reason_ = r.out + r.err;
      return json();
    }
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    auto j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out << r.err;
    return j.is_discarded() ? json() : j;
  }
  // One request (tests/e2e/http_request.py options: --method, --data, --bearer, --cafile):
  // {"status" (0: no HTTP answer), "set_cookie", "body"}.
  static json http(const std::string& url, std::vector<std::string> options = {}) {
    options.insert(options.begin(), url);
    const test::CliResult r = python("http_request.py", options);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto j = json::parse(r.out, nullptr, false);
    return j.is_discarded() ? json{{"status", -1}, {"set_cookie", ""}, {"body", r.err}} : j;
  }
  std::string skip_reason_;
};

// deploy/grafana/shardpress.json queries only metrics a running coordinator exports, each
// with samples once a job has run on a worker.
TEST_F(StatusPageCluster, GrafanaDashboardQueriesOnlyMetricsTheCoordinatorExports) {
  start_coordinator();
  start_worker("a");
  ASSERT_EQ(cli({"submit", write_job("g"), "--wait"}).exit_code, 0);
  auto maddr = read_file(dir_ / "state/metrics.addr");
  ASSERT_TRUE(maddr.ok());
  const std::string metrics = http("http://" + maddr->substr(0, maddr->find('\n')) + "/metrics")["body"];
  ASSERT_NE(metrics.find("# TYPE shardpress_tasks gauge"), std::string::npos) << metrics;

  auto text = read_file(std::string(SP_PROJECT_DIR) + "/deploy/grafana/shardpress.json");
  ASSERT_TRUE(text.ok());
  const json dash = json::parse(*text);
  EXPECT_EQ(dash["uid"], "shardpress");
  std::set<std::string> queried;
  const std::regex name("shardpress_[a-z_]+");
  for (const auto& panel : dash["panels"]) {
    ASSERT_FALSE(panel["targets"].empty()) << panel["title"];
    for (const auto& t : panel["targets"]) {
      const std::string expr = t["expr"];
      for (auto it = std::sregex_iterator(expr.begin(), expr.end(), name); it != std::sregex_iterator(); ++it)
        queried.insert(it->str());
    }
  }
  EXPECT_GE(queried.size(), 12u);
  for (const auto& m : queried) {
    EXPECT_NE(metrics.find("# TYPE " + m + " "), std::string::npos) << m << " is not exported";
    EXPECT_TRUE(metrics.find("\n" + m + " ") != std::string::npos || metrics.find("\n" + m + "{") != std::string::npos)
        << m << " has no sample";
  }
  EXPECT_NE(metrics.find("shardpress_tasks_completed_total 5"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("shardpress_job_duration_seconds{job=\"job-0001\",name=\"g\",state=\"succeeded\"}"),
            std::string::npos)
      << metrics;
}

TEST_F(StatusPageCluster, SignedInChromiumShowsProgressWorkersAndAKilledTasksError) {
  const std::string token = "7d41c0e29b3a85f6e1c4d7a09b2e5f38";
  test::write_text(dir_ / "token", token + "\n");
  // Every `shardpress` the fixture runs (status, wait_for) carries it.
  setenv("SHARDPRESS_TOKEN_FILE", (dir_ / "token").c_str(), 1);
  struct Unset {
    ~Unset() { unsetenv("SHARDPRESS_TOKEN_FILE"); }
  } unset;
  start_coordinator("", {"--token-file", dir_ / "token"});
  auto maddr = read_file(dir_ / "state/metrics.addr");
  ASSERT_TRUE(maddr.ok());
  const std::string page = "http://" + maddr->substr(0, maddr->find('\n')) + "/";

  // No token, a wrong one: the login form and no data.
  EXPECT_EQ(http(page + "api/jobs")["status"], 401);
  EXPECT_EQ(http(page + "api/jobs", {"--bearer", "wrong-token-wrong-token"})["status"], 401);
  EXPECT_EQ(http(page + "api/jobs", {"--bearer", token})["status"], 200);
  json anonymous = browse(page, {"--wait", "needs its token", "--timeout", "20"});
  if (!skip_reason_.empty()) GTEST_SKIP() << "Chromium cannot start here: " << skip_reason_;
  EXPECT_TRUE(anonymous.value("ok", false)) << anonymous.dump();
  json wrong = browse(page, {"--token", "not-the-token-at-all", "--wait", "That is not this coordinator's token",
                             "--timeout", "20"});
  EXPECT_TRUE(wrong.value("ok", false)) << wrong.dump();
  EXPECT_EQ(wrong.value("text", "").find("Workers"), std::string::npos) << "no data without the token";

  // A job on a slow worker, which is killed holding a task; another worker finishes it.
  test::Process* a = start_worker("a", "task=1500", false, {"--token-file", dir_ / "token"});
  ASSERT_EQ(cli({"--token-file", dir_ / "token", "submit", write_job("page")}).exit_code, 0);
  auto leased = [&] {
    for (int i = 0; i < 400; ++i) {
      auto r = cli({"--token-file", dir_ / "token", "status", "page", "-o", "json"});
      EXPECT_EQ(r.exit_code, 0) << r.err;
      if (r.exit_code != 0) return false;
      const json s = json::parse(r.out);  // a local: a range-for over a temporary's member dangles
      for (const auto& t : s["tasks"])
        if (t["state"] == "LEASED") return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return false;
  };
  ASSERT_TRUE(leased());
  a->kill(SIGKILL);
  a->wait();
  // Signed in while the job waits (no worker left): its row, progress short of the end,
  // the killed worker silent, its expired leases in the task grid, the event log.
  json during = browse(page, {"--token", token, "--wait", "page", "--wait", "expired (attempt 1)", "--wait", "silent",
                              "--eval", "document.querySelector('tr[data-job=\"page\"] .bar').dataset.done",
                              "--eval", "document.querySelector('tr[data-job=\"page\"] .bar').dataset.total",
                              "--eval", "document.querySelectorAll('#workers tbody tr').length",
                              "--eval", "document.querySelectorAll('#tasks tbody tr').length",
                              "--timeout", "30"});
  ASSERT_TRUE(during.value("ok", false)) << during.dump();
  const int done_then = std::stoi(during["evals"][0].get<std::string>());
  const int total = std::stoi(during["evals"][1].get<std::string>());
  EXPECT_GT(total, 0);
  EXPECT_LT(done_then, total) << "the job had not finished when the page was read";
  EXPECT_EQ(during["evals"][2], 1) << "the killed worker, silent";
  EXPECT_EQ(during["evals"][3], total) << "one row per task";
  EXPECT_NE(during["text"].get<std::string>().find("leased to worker"), std::string::npos) << "the event log";
  start_worker("b", "task=100", false, {"--token-file", dir_ / "token"});

  // Later: the progress has advanced to the end, the job succeeded; a sweep's two variants
  // (jobs named sw.*, evaluated) are a table and a plot; the screenshot stays.
  wait_for("page", succeeded, 60'000);
  fs::copy_file(test::fixture("stories260k/text/eval.ids.txt"), dir_ / "models/eval.ids.txt");
  for (const char* v : {"sw.nf4", "sw.pruned"}) {
    const std::string path = dir_ / (std::string(v) + ".yaml");
    test::write_text(path, "name: " + std::string(v) + "\nmodel: " + (dir_ / "models/stories") + "\noutput: " +
                               (dir_ / ("out/" + std::string(v))) +
                               (std::string(v) == "sw.pruned" ? "\nprune: {method: magnitude, sparsity: 0.3}" : "") +
                               "\nevaluate: {ids: " + (dir_ / "models/eval.ids.txt") + ", samples: 4}\n");
    ASSERT_EQ(cli({"submit", path, "--wait"}).exit_code, 0) << v;
  }
  const std::string shot = test::bin_dir() + "/../status-page.png";
  json after = browse(page, {"--token", token, "--wait", "SUCCEEDED", "--wait", "Sweeps", "--wait", "pruned",
                             "--wait", "alive",
                             "--screenshot", shot, "--eval",
                             "document.querySelector('tr[data-job=\"page\"] .bar').dataset.done", "--eval",
                             "document.querySelectorAll('table[data-sweep=\"sw\"] tbody tr').length", "--eval",
                             "document.querySelectorAll('.sweep-plot svg circle').length", "--timeout", "30"});
  ASSERT_TRUE(after.value("ok", false)) << after.dump();
  EXPECT_EQ(std::stoi(after["evals"][0].get<std::string>()), total) << "progress advanced to every task";
  EXPECT_EQ(after["evals"][1], 2) << "the sweep's two variants";
  EXPECT_EQ(after["evals"][2], 2) << "a point per evaluated variant";
  EXPECT_NE(after["text"].get<std::string>().find("silent"), std::string::npos) << "the killed worker still listed";
  EXPECT_GT(fs::file_size(shot), 10'000u);
  std::fprintf(stderr, "status page screenshot: %s\n", fs::canonical(shot).c_str());
}

// With TLS, the page, its API and /metrics are HTTPS with the coordinator's own
// certificate; plain HTTP gets nothing, the sign-in cookie is Secure, the API still wants
// the token.
TEST_F(StatusPageCluster, WithTlsThePageIsHttpsAndItsCookieSecure) {
  make_certificates(dir_.path());
  const std::string token = "0b5e9c2d7a41f8e36c1d0a9b8e7f6a52";
  test::write_text(dir_ / "token", token + "\n");
  start_coordinator("", {"--tls-cert", dir_ / "server.pem", "--tls-key", dir_ / "server.key", "--token-file",
                         dir_ / "token"});
  auto maddr = read_file(dir_ / "state/metrics.addr");
  ASSERT_TRUE(maddr.ok());
  const std::string host = maddr->substr(0, maddr->find('\n'));
  const std::string https = "https://" + host;
  const std::vector<std::string> ca{"--cafile", dir_ / "ca.pem"};
  auto with_ca = [&](std::vector<std::string> more) {
    more.insert(more.end(), ca.begin(), ca.end());
    return more;
  };
  EXPECT_EQ(http(https + "/metrics", ca)["status"], 200);
  EXPECT_EQ(http(https + "/api/jobs", ca)["status"], 401);
  EXPECT_EQ(http(https + "/api/jobs", with_ca({"--bearer", token}))["status"], 200);
  const json login = http(https + "/login", with_ca({"--method", "POST", "--data", "token=" + token}));
  EXPECT_EQ(login["status"], 303) << login.dump();
  EXPECT_NE(login["set_cookie"].get<std::string>().find("HttpOnly; SameSite=Strict; Secure"), std::string::npos)
      << login.dump();
  EXPECT_EQ(http("http://" + host + "/metrics")["status"], 0) << "plain HTTP to the TLS endpoint gets nothing";
}

}  // namespace
}  // namespace sp
