// End to end: a real shardpress-coordinator and shardpress-worker processes on
// 127.0.0.1 with the real RocksDB, driven by the real CLI; processes are killed with
// SIGKILL at chosen points (test delays slow the phases down) and restarted. Every job
// must finish with the bytes the ops produce directly.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "checkpoint/local_compress.h"
#include "common/file_util.h"
#include "formats/safetensors.h"
#include "fmt/format.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testutil/fixtures.h"
#include "tests/testutil/process.h"
#include "tests/e2e/cluster.h"

namespace sp {
namespace {

TEST_F(Cluster, CoordinatorAndTwoWorkersCompressStories) {
  start_coordinator();
  // Tasks take 200 ms, and a worker holds at most two leases (one computing, one
  // prefetched), so with both registered before the submit each gets work.
  start_worker("a", "task=200");
  start_worker("b", "task=200", /*fetch=*/true);
  wait_for_workers(2);
  auto r = cli({"submit", write_job("s1", true), "--wait"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("SUCCEEDED"), std::string::npos);
  expect_reference_output("s1", true);
  const json s = status("s1");
  std::set<std::string> used;
  for (const auto& t : s["tasks"]) used.insert(t["worker_id"]);
  EXPECT_EQ(used.size(), 2u) << "both workers should have run tasks: " << s.dump();
  auto w = cli({"workers", "-o", "json"});
  EXPECT_EQ(json::parse(w.out)["workers"].size(), 2u);
  auto ev = cli({"events", "s1"});
  EXPECT_NE(ev.out.find("imported 47 tensors in 7 shards; 5 new tasks"), std::string::npos) << ev.out;
}

TEST_F(Cluster, KillWorkerHoldingALease) {
  start_coordinator();
  test::Process* slow = start_worker("slow", "task=3000");
  ASSERT_EQ(cli({"submit", write_job("s2")}).exit_code, 0);
  const json leased = wait_for("s2", [](const json& s) {
    for (const auto& t : s["tasks"])
      if (t["state"] == "LEASED") return true;
    return false;
  });
  slow->kill(SIGKILL);
  slow->wait();
  start_worker("fast", "", /*fetch=*/true);
  const json s = wait_for("s2", succeeded);
  int retried = 0;
  for (const auto& t : s["tasks"]) retried += t["attempt"].get<int>() >= 2;
  EXPECT_GE(retried, 1) << "the killed worker's task must have been leased again";
  expect_reference_output("s2");
}

TEST_F(Cluster, KillCoordinatorWhileImporting) {
  start_coordinator("import=40");
  start_worker("a");
  ASSERT_EQ(cli({"submit", write_job("s3")}).exit_code, 0);
  wait_for("s3", [](const json& s) { return s["phase"].get<std::string>().rfind("importing 1", 0) == 0; });
  coordinator_->kill(SIGKILL);
  coordinator_->wait();
  start_coordinator();
  wait_for("s3", succeeded);
  expect_reference_output("s3");
}

TEST_F(Cluster, KillCoordinatorMidTasksRedoesNoFinishedTask) {
  start_coordinator();
  start_worker("a", "task=400");
  ASSERT_EQ(cli({"submit", write_job("s4")}).exit_code, 0);
  const json before = wait_for("s4", [](const json& s) { return done(s) >= 2; });
  const auto finished = done_attempts(before);
  coordinator_->kill(SIGKILL);
  coordinator_->wait();
  start_coordinator();
  const json after = wait_for("s4", succeeded);
  const auto attempts = done_attempts(after);
  for (const auto& [id, attempt] : finished) EXPECT_EQ(attempts.at(id), attempt) << id << " was redone";
  expect_reference_output("s4");
}

TEST_F(Cluster, KillCoordinatorWhileAssembling) {
  start_coordinator("assemble=15");
  start_worker("a");
  ASSERT_EQ(cli({"submit", write_job("s5")}).exit_code, 0);
  wait_for("s5", [](const json& s) {  // two or more tensors written (a poll may miss any one count)
    const std::string phase = s["phase"];
    return phase.rfind("assembling ", 0) == 0 && std::atoi(phase.c_str() + 11) >= 2;
  });
  coordinator_->kill(SIGKILL);
  coordinator_->wait();
  EXPECT_FALSE(fs::exists(dir_ / "out/s5")) << "a half-written checkpoint became visible";
  start_coordinator();
  const json s = wait_for("s5", succeeded);
  EXPECT_EQ(done(s), 5);
  expect_reference_output("s5");
}

TEST_F(Cluster, CancelThenResumeReusesFinishedTasks) {
  start_coordinator();
  // Tasks of 700 ms: three are left when two are done, time enough to cancel on a busy machine.
  start_worker("a", "task=700");
  ASSERT_EQ(cli({"submit", write_job("s6")}).exit_code, 0);
  wait_for("s6", [](const json& s) { return done(s) >= 2; });
  auto c = cli({"cancel", "s6", "-o", "json"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(json::parse(c.out)["state"], "CANCELLED");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the task in hand may still finish
  const auto finished = done_attempts(status("s6"));
  EXPECT_EQ(status("s6")["state"], "CANCELLED");
  auto r = cli({"resume", "s6", "--wait"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto attempts = done_attempts(status("s6"));
  for (const auto& [id, attempt] : finished) EXPECT_EQ(attempts.at(id), attempt) << id << " was redone";
  expect_reference_output("s6");
}

TEST_F(Cluster, JobsQueueAndRunInOrder) {
  start_coordinator();
  start_worker("a");
  ASSERT_EQ(cli({"submit", write_job("q1")}).exit_code, 0);
  ASSERT_EQ(cli({"submit", write_job("q2", true)}).exit_code, 0);
  const json s2 = wait_for("q2", succeeded);
  const json s1 = status("q1");
  EXPECT_EQ(s1["state"], "SUCCEEDED");
  EXPECT_LE(s1["finished_ms"].get<int64_t>(), s2["started_ms"].get<int64_t>());  // numbers in -o json
  expect_reference_output("q1");
  expect_reference_output("q2", true);
  auto l = cli({"list"});
  EXPECT_NE(l.out.find("q1"), std::string::npos);
  EXPECT_NE(l.out.find("q2"), std::string::npos);
}

TEST_F(Cluster, BadInputGetsTheRightExitCodeAndStoresNothing) {
  start_coordinator();
  test::write_text(dir_ / "typo.yaml", "model: x\noutput: y\nquantise: {blocksize: 64}\n");
  auto typo = cli({"submit", dir_ / "typo.yaml"});
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_NE(typo.err.find("unknown key 'quantise'"), std::string::npos) << typo.err;

  test::write_text(dir_ / "missing.yaml", "model: " + (dir_ / "models/nope") + "\noutput: " + (dir_ / "out/m") + "\n");
  auto missing = cli({"submit", dir_ / "missing.yaml"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("no config.json"), std::string::npos) << missing.err;

  test::write_text(dir_ / "outside.yaml", "model: " + (dir_ / "models/stories") + "\noutput: " + (dir_ / "elsewhere") + "\n");
  auto outside = cli({"submit", dir_ / "outside.yaml"});
  EXPECT_EQ(outside.exit_code, 2);
  EXPECT_NE(outside.err.find("outside the coordinator's allowed root"), std::string::npos) << outside.err;

  auto unknown = cli({"status", "no-such-job"});
  EXPECT_EQ(unknown.exit_code, 2);

  auto list = cli({"list", "-o", "json"});
  ASSERT_EQ(list.exit_code, 0);
  EXPECT_EQ(json::parse(list.out).value("jobs", json::array()).size(), 0u) << "a rejected job was stored";

  auto down = test::run_cli({"--coordinator", "127.0.0.1:1", "status"});
  EXPECT_EQ(down.exit_code, 3);
  EXPECT_NE(down.err.find("cannot reach the coordinator at 127.0.0.1:1"), std::string::npos) << down.err;
}

// GET /metrics over a plain socket.
std::string http_get(const std::string& addr, const std::string& path) {
  const size_t colon = addr.rfind(':');
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::stoi(addr.substr(colon + 1))));
  ::inet_pton(AF_INET, addr.substr(0, colon).c_str(), &sa.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return "";
  }
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  (void)!::write(fd, req.data(), req.size());
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) resp.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return resp;
}

TEST_F(Cluster, MetricsEndpointCountsTasksBytesAndWorkers) {
  start_coordinator();
  start_worker("a", "", /*fetch=*/true);
  ASSERT_EQ(cli({"submit", write_job("m1"), "--wait"}).exit_code, 0);
  auto addr = read_file(dir_ / "state/metrics.addr");
  ASSERT_TRUE(addr.ok());
  const std::string body = http_get(addr->substr(0, addr->find('\n')), "/metrics");
  EXPECT_NE(body.find("200 OK"), std::string::npos) << body;
  EXPECT_NE(body.find("shardpress_tasks{state=\"done\"} 5"), std::string::npos) << body;
  EXPECT_NE(body.find("shardpress_jobs{state=\"succeeded\"} 1"), std::string::npos) << body;
  EXPECT_NE(body.find("shardpress_workers_alive 1"), std::string::npos) << body;
  EXPECT_NE(body.find("shardpress_blob_bytes_sent_total 4"), std::string::npos) << body;  // 454400 bytes fetched
  EXPECT_NE(http_get(addr->substr(0, addr->find('\n')), "/nope").find("404"), std::string::npos);
}

TEST_F(Cluster, LocalRerunResumesAfterKill) {
  const std::string job = write_job("l1");
  const std::vector<std::string> args{"local", job, "--workers", "1", "--state-dir", dir_ / "local-state"};
  ASSERT_TRUE(kill_local_when(args, "2/5 tasks", "local1.log"));
  EXPECT_FALSE(fs::exists(dir_ / "out/l1"));
  auto r = test::run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("resuming job-0001"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("(0/5 tasks already done)"), std::string::npos) << "nothing was kept: " << r.err;
  EXPECT_NE(r.err.find("/5 tasks already done)"), std::string::npos) << r.err;
  expect_reference_output("l1");
}

TEST_F(Cluster, StatusSaysWhyNothingRuns) {
  start_coordinator();
  ASSERT_EQ(cli({"submit", write_job("w1")}).exit_code, 0);
  wait_for("w1", [](const json& s) { return s["phase"] == "waiting for a worker (none connected)"; });
  workers_["tiny"] = std::make_unique<test::Process>(
      test::bin_dir() + "/shardpress-worker",
      std::vector<std::string>{"--coordinator", addr_, "--cache-dir", dir_ / "cache-tiny", "--memory", "16MiB"},
      std::map<std::string, std::string>{}, dir_ / "tiny.log");
  wait_for("w1", [](const json& s) {
    return s["phase"].get<std::string>().rfind("waiting: a task needs 64.", 0) == 0 &&
           s["phase"].get<std::string>().find("the largest worker offers 16.00 MiB") != std::string::npos;
  });
  start_worker("big");
  wait_for("w1", succeeded);
}

TEST_F(Cluster, WorkerRefusesABadGpuMemoryBudget) {
  test::Process w(test::bin_dir() + "/shardpress-worker",
                  {"--coordinator", "127.0.0.1:1", "--cache-dir", dir_ / "cache-g", "--gpu-memory", "lots"},
                  std::map<std::string, std::string>{}, dir_ / "g.log");
  EXPECT_EQ(w.wait(10'000), 2);
  auto log = read_file(dir_ / "g.log");
  ASSERT_TRUE(log.ok());
  EXPECT_NE(log->find("--gpu-memory"), std::string::npos) << *log;
}

TEST_F(Cluster, TokenIsRequiredOnEveryCallAndNeverShown) {
  const std::string token = "3f9c2a7e41d8b6c05e7a9d1f2b4c6e80";
  test::write_text(dir_ / "token", token + "\n");
  test::write_text(dir_ / "wrong", "00000000000000000000000000000000\n");
  start_coordinator("", {"--token-file", dir_ / "token"});

  test::Process* anonymous = start_worker("anonymous");
  EXPECT_EQ(anonymous->wait(10'000), 2) << "a worker without the token must give up";
  test::Process* wrong = start_worker("wrong", "", false, {"--token-file", dir_ / "wrong"});
  EXPECT_EQ(wrong->wait(10'000), 2);
  start_worker("ok", "", false, {"--token-file", dir_ / "token"});

  auto no_token = cli({"list"});
  EXPECT_EQ(no_token.exit_code, 2);
  EXPECT_NE(no_token.err.find("no token"), std::string::npos) << no_token.err;
  auto bad = cli({"--token-file", dir_ / "wrong", "list"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("wrong token"), std::string::npos) << bad.err;
  auto r = cli({"--token-file", dir_ / "token", "submit", write_job("t1"), "--wait"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  expect_reference_output("t1");

  auto addr = read_file(dir_ / "state/metrics.addr");
  const std::string metrics = http_get(addr->substr(0, addr->find('\n')), "/metrics");
  const std::string key = "\nshardpress_auth_failures_total ";
  const size_t pos = metrics.find(key);
  ASSERT_NE(pos, std::string::npos) << metrics;
  EXPECT_GE(std::stoi(metrics.substr(pos + key.size())), 4) << metrics;  // 2 workers + 2 CLI calls
  for (const auto& e : fs::directory_iterator(dir_.path()))
    if (e.path().extension() == ".log") {
      EXPECT_EQ(read_file(e.path().string())->find(token), std::string::npos) << e.path();
    }
  EXPECT_EQ(r.out.find(token), std::string::npos);
  EXPECT_EQ(cli({"--token-file", dir_ / "token", "status", "t1", "-o", "json"}).out.find(token), std::string::npos);
}

TEST_F(Cluster, ListeningBeyondLoopbackNeedsATokenOrInsecure) {
  auto refused = test::Process(test::bin_dir() + "/shardpress-coordinator",
                               {"--listen", "0.0.0.0:0", "--data-dir", dir_ / "s1", "--model-root", dir_ / "models",
                                "--output-root", dir_ / "out"},
                               {}, dir_ / "refused.log");
  EXPECT_EQ(refused.wait(10'000), 2);
  EXPECT_NE(read_file(dir_ / "refused.log")->find("refusing to listen on 0.0.0.0:0 without --token-file"),
            std::string::npos);
  auto insecure = test::Process(test::bin_dir() + "/shardpress-coordinator",
                                {"--listen", "0.0.0.0:0", "--data-dir", dir_ / "s2", "--model-root", dir_ / "models",
                                 "--output-root", dir_ / "out", "--insecure"},
                                {}, dir_ / "insecure.log");
  for (int i = 0; i < 500 && !fs::exists(dir_ / "s2/coordinator.addr"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(insecure.running());
  EXPECT_NE(read_file(dir_ / "insecure.log")->find("WARNING: listening on 0.0.0.0:0 without a token"),
            std::string::npos);
  insecure.kill(SIGTERM);
  EXPECT_EQ(insecure.wait(10'000), 0);
}

TEST_F(Cluster, TlsPlainAndWrongCaConnectionsFail) {
  make_certificates(dir_.path());
  start_coordinator("", {"--tls-cert", dir_ / "server.pem", "--tls-key", dir_ / "server.key"});
  auto ok = cli({"--tls-ca", dir_ / "ca.pem", "list"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(cli({"list"}).exit_code, 3) << "plain TCP to a TLS coordinator must fail";
  EXPECT_EQ(cli({"--tls-ca", dir_ / "other.pem", "list"}).exit_code, 3) << "a wrong CA must fail";
  start_worker("tls", "", false, {"--tls-ca", dir_ / "ca.pem"});
  auto r = cli({"--tls-ca", dir_ / "ca.pem", "submit", write_job("tls1"), "--wait"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  expect_reference_output("tls1");
}

TEST_F(Cluster, MutualTlsRequiresAClientCertificate) {
  make_certificates(dir_.path());
  start_coordinator("", {"--tls-cert", dir_ / "server.pem", "--tls-key", dir_ / "server.key", "--tls-client-ca",
                         dir_ / "ca.pem"});
  EXPECT_EQ(cli({"--tls-ca", dir_ / "ca.pem", "list"}).exit_code, 3) << "no client certificate must fail";
  const std::vector<std::string> mtls{"--tls-ca", dir_ / "ca.pem", "--tls-cert", dir_ / "client.pem", "--tls-key",
                                      dir_ / "client.key"};
  std::vector<std::string> list = mtls;
  list.push_back("list");
  auto ok = cli(list);
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  start_worker("mtls", "", false, mtls);
  std::vector<std::string> submit = mtls;
  submit.insert(submit.end(), {"submit", write_job("mtls1"), "--wait"});
  auto r = cli(submit);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  expect_reference_output("mtls1");
}

TEST_F(Cluster, ConfinementFollowsSymlinks) {
  start_coordinator();
  fs::create_directories(dir_ / "elsewhere/m");
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(dir_ / (std::string("models/stories/") + f), dir_ / (std::string("elsewhere/m/") + f));
  fs::create_directory_symlink(dir_ / "elsewhere/m", dir_ / "models/linked");  // a folder pointing out
  fs::create_directories(dir_ / "models/half");
  fs::copy_file(dir_ / "models/stories/config.json", dir_ / "models/half/config.json");
  fs::create_symlink(dir_ / "elsewhere/m/model.safetensors", dir_ / "models/half/model.safetensors");

  for (const char* m : {"linked", "half"}) {
    test::write_text(dir_ / "c.yaml", "model: " + (dir_ / (std::string("models/") + m)) + "\noutput: " +
                                          (dir_ / (std::string("out/") + m)) + "\n");
    auto r = cli({"submit", dir_ / "c.yaml"});
    EXPECT_EQ(r.exit_code, 2) << m;
    EXPECT_NE(r.err.find("outside the coordinator's allowed root"), std::string::npos) << r.err;
  }
  fs::create_directory_symlink(dir_ / "elsewhere", dir_ / "out/escape");
  test::write_text(dir_ / "o.yaml", "model: " + (dir_ / "models/stories") + "\noutput: " + (dir_ / "out/escape/x") + "\n");
  auto o = cli({"submit", dir_ / "o.yaml"});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.err.find("output"), std::string::npos) << o.err;
  EXPECT_EQ(json::parse(cli({"list", "-o", "json"}).out).value("jobs", json::array()).size(), 0u);
}

TEST_F(Cluster, ExistingOutputIsReplacedOnlyWhenTheJobSaysSo) {
  start_coordinator();
  start_worker("a");
  fs::create_directories(dir_ / "out/r1");
  test::write_text(dir_ / "out/r1/old.txt", "previous run");
  auto refused = cli({"submit", write_job("r1")});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("set overwrite: true"), std::string::npos) << refused.err;
  test::write_text(dir_ / "r1.yaml", "name: r1\nmodel: " + (dir_ / "models/stories") + "\noutput: " +
                                         (dir_ / "out/r1") + "\noverwrite: true\n");
  auto r = cli({"submit", dir_ / "r1.yaml", "--wait"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out/r1/old.txt"));
  expect_reference_output("r1");
}

TEST_F(Cluster, SigtermOnTheCoordinatorMidJobThenRestart) {
  start_coordinator();
  start_worker("a", "task=300");
  ASSERT_EQ(cli({"submit", write_job("g1")}).exit_code, 0);
  const json before = wait_for("g1", [](const json& s) { return done(s) >= 2; });
  const auto finished = done_attempts(before);
  coordinator_->kill(SIGTERM);
  EXPECT_EQ(coordinator_->wait(10'000), 0) << "a SIGTERM must stop the coordinator cleanly";
  start_coordinator();
  const json after = wait_for("g1", succeeded);
  for (const auto& [id, attempt] : done_attempts(after))
    if (finished.count(id)) {
      EXPECT_EQ(attempt, finished.at(id)) << id << " was redone";
    }
  expect_reference_output("g1");
}

// A worker that stops answering (SIGSTOP: as if cut off by a partition) for longer than
// the lease TTL loses its lease; the task runs elsewhere; when it comes back its stale
// result is refused (fencing) and the output is unchanged.
TEST_F(Cluster, FrozenWorkerLosesItsLeaseAndItsLateResultIsRefused) {
  start_coordinator();
  test::Process* frozen = start_worker("frozen", "task=1500");
  ASSERT_EQ(cli({"submit", write_job("p1")}).exit_code, 0);
  std::string task;
  wait_for("p1", [&task](const json& s) {
    for (const auto& t : s["tasks"])
      if (t["state"] == "LEASED") task = t["id"];
    return !task.empty();
  });
  frozen->kill(SIGSTOP);
  start_worker("healthy");
  const json s = wait_for("p1", succeeded);
  frozen->kill(SIGCONT);  // it finishes its stale attempt: the lease is gone
  EXPECT_TRUE(stale_result_dropped("frozen")) << *read_file(dir_ / "frozen.log");
  for (const auto& t : s["tasks"])
    if (t["id"] == task) {
      EXPECT_GE(t["attempt"].get<int>(), 2);
    }
  EXPECT_EQ(status("p1")["state"], "SUCCEEDED");
  expect_reference_output("p1");
}

// The output disk fills up while assembling (an injected ENOSPC after 100 kB): the job
// fails with a clear error and nothing half-written is visible; after space is freed
// (restart without the fault) `resume` finishes byte-identical.
TEST_F(Cluster, DiskFullWhileAssemblingThenResume) {
  start_coordinator("enospc=100000");
  start_worker("a");
  auto r = cli({"submit", write_job("d1"), "--wait"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  const json failed = status("d1");
  EXPECT_EQ(failed["state"], "FAILED");
  EXPECT_NE(failed["error"].get<std::string>().find("No space left on device"), std::string::npos) << failed["error"];
  EXPECT_FALSE(fs::exists(dir_ / "out/d1"));
  for (const auto& e : fs::directory_iterator(dir_ / "out"))
    EXPECT_NE(e.path().filename().string()[0], '.') << "left behind: " << e.path();
  coordinator_->kill(SIGTERM);
  coordinator_->wait();
  start_coordinator();  // space freed
  auto resumed = cli({"resume", "d1", "--wait"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  const json s = status("d1");
  for (const auto& t : s["tasks"]) EXPECT_EQ(t["attempt"], 1) << "finished tasks must be kept";
  expect_reference_output("d1");
}

// Workers reach the coordinator through a proxy that corrupts bytes inside long transfers,
// cuts connections and adds delay: damaged blobs are caught by their digests and sent
// again, cut streams are retried, and the job's output is what the ops produce directly.
TEST_F(Cluster, CorruptedAndCutStreamsThroughAFaultyProxy) {
  ASSERT_EQ(test::run_cli({"synth", "--params", "10M", dir_ / "models/synth"}).exit_code, 0);
  LocalCompressOptions o;
  ASSERT_TRUE(compress_model_local(dir_ / "models/synth", dir_ / "ref", o).ok());
  start_coordinator();
  const std::string via = start_proxy({"--corrupt-every", "2000000", "--cut-every", "8000000", "--delay-ms", "1"});
  start_worker("x", "", /*fetch=*/true, {}, via);
  start_worker("y", "", /*fetch=*/true, {}, via);
  test::write_text(dir_ / "f.yaml", "name: f1\nmodel: " + (dir_ / "models/synth") + "\noutput: " + (dir_ / "out/f1") + "\n");
  ASSERT_EQ(cli({"submit", dir_ / "f.yaml"}).exit_code, 0);
  wait_for("f1", succeeded, 120'000);
  EXPECT_EQ(manifest_digests(dir_ / "out/f1"), manifest_digests(dir_ / "ref"));
  proxy_->kill(SIGTERM);
  proxy_->wait();
  auto stats = read_file(dir_ / "proxy.stats");
  ASSERT_TRUE(stats.ok());
  uint64_t conns = 0, bytes = 0, corrupted = 0, cuts = 0;
  std::sscanf(stats->c_str(), "%lu %lu %lu %lu", &conns, &bytes, &corrupted, &cuts);
  std::fprintf(stderr, "fault proxy: %lu connections, %lu bytes, %lu corrupted, %lu cuts\n", conns, bytes, corrupted, cuts);
  EXPECT_GE(corrupted, 1u) << "no corruption was injected: the test proved nothing";
  EXPECT_GE(cuts, 1u);
}

// Chaos: three jobs, three workers, and random kill -9 + restart of the coordinator and
// workers for a bounded number of rounds. Every job must finish with the bytes of a clean
// run. Prints kills survived, tasks retried and bytes lost.
TEST_F(Cluster, ChaosKillsAndRestartsLoseNothing) {
  start_coordinator();
  const std::string slow = "task=400";
  for (const char* w : {"w0", "w1", "w2"}) start_worker(w, slow);
  ASSERT_EQ(cli({"submit", write_job("c1")}).exit_code, 0);
  ASSERT_EQ(cli({"submit", write_job("c2", true)}).exit_code, 0);
  ASSERT_EQ(cli({"submit", write_job("c3")}).exit_code, 0);
  std::mt19937 rng(20261123);
  int coordinator_kills = 0, worker_kills = 0;
  const char* env = std::getenv("SHARDPRESS_CHAOS_ROUNDS");  // longer runs: set it higher
  const int rounds = env ? std::atoi(env) : 20;
  for (int round = 0; round < rounds; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 350));
    const int victim = static_cast<int>(rng() % 4);
    if (victim == 3) {
      coordinator_->kill(SIGKILL);
      coordinator_->wait();
      start_coordinator();
      ++coordinator_kills;
    } else {
      const std::string w = fmt::format("w{}", victim);
      workers_[w]->kill(SIGKILL);
      workers_[w]->wait();
      start_worker(w, slow);  // same cache dir: the same worker id comes back
      ++worker_kills;
    }
  }
  int retried = 0;
  for (const char* job : {"c1", "c2", "c3"}) {
    const json s = wait_for(job, succeeded, 120'000);
    for (const auto& t : s["tasks"]) retried += t["attempt"].get<int>() - 1;
  }
  expect_reference_output("c1");
  expect_reference_output("c2", true);
  expect_reference_output("c3");
  std::fprintf(stderr,
               "chaos: %d faults injected (kill -9 + restart): %d coordinator and %d worker kills survived, "
               "%d task attempts retried, 0 bytes lost (every output matches a clean run's digests)\n",
               coordinator_kills + worker_kills, coordinator_kills, worker_kills, retried);
}

// The coordinator's data dir fills up while importing (a 64 MiB tmpfs under a 250 MB
// model): the job stops with a clear error and nothing is corrupted; after space is
// freed (the tmpfs grown) and a restart, `resume` finishes byte-identical.
TEST_F(Cluster, CoordinatorDiskFullWhileImportingThenResume) {
  const std::string mnt = dir_ / "small-state";
  fs::create_directories(mnt);
  if (std::system(("mount -t tmpfs -o size=64m tmpfs '" + mnt + "' 2>/dev/null").c_str()) != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root)";
  struct Unmount {
    std::string path;
    ~Unmount() { (void)!std::system(("umount -l '" + path + "' 2>/dev/null").c_str()); }
  } unmount{mnt};
  ASSERT_EQ(test::run_cli({"synth", "--params", "125M", dir_ / "models/big"}).exit_code, 0);
  LocalCompressOptions o;
  ASSERT_TRUE(compress_model_local(dir_ / "models/big", dir_ / "ref", o).ok());
  const std::vector<std::string> args{"--listen", "127.0.0.1:0", "--data-dir", mnt, "--model-root", dir_ / "models",
                                      "--output-root", dir_ / "out", "--min-free-space", "8MiB", "--import", "copy"};
  auto coordinator = std::make_unique<test::Process>(test::bin_dir() + "/shardpress-coordinator", args,
                                                     std::map<std::string, std::string>{}, dir_ / "coordinator.log");
  for (int i = 0; i < 500 && !fs::exists(mnt + "/coordinator.addr"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  addr_ = read_file(mnt + "/coordinator.addr")->substr(0, read_file(mnt + "/coordinator.addr")->find('\n'));
  start_worker("a");
  wait_for_workers(1);  // registered before the import fills the disk (registering writes the state store)
  test::write_text(dir_ / "big.yaml", "name: big\nmodel: " + (dir_ / "models/big") + "\noutput: " + (dir_ / "out/big") + "\n");
  ASSERT_EQ(cli({"submit", dir_ / "big.yaml"}).exit_code, 0);
  const json failed = wait_for("big", [](const json& s) { return s["state"] == "FAILED"; }, 60'000);
  EXPECT_NE(failed["error"].get<std::string>().find("no space left"), std::string::npos) << failed["error"];
  EXPECT_FALSE(fs::exists(dir_ / "out/big"));
  // The failure is in the event log (the store keeps room to record it) and in the log.
  auto events = cli({"events", "big"});
  EXPECT_NE(events.out.find("job failed: state store: no space left"), std::string::npos) << events.out;
  EXPECT_TRUE(coordinator->running()) << "a full disk must not take the coordinator down";
  coordinator->kill(SIGTERM);
  coordinator->wait();
  ASSERT_EQ(std::system(("mount -o remount,size=1g '" + mnt + "'").c_str()), 0);  // space freed
  std::vector<std::string> again = args;
  again[1] = addr_;
  coordinator = std::make_unique<test::Process>(test::bin_dir() + "/shardpress-coordinator", again,
                                                std::map<std::string, std::string>{}, dir_ / "coordinator2.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const json now = status("big");
  if (now["state"] == "FAILED") {
    auto r = cli({"resume", "big"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  wait_for("big", succeeded, 120'000);
  EXPECT_EQ(manifest_digests(dir_ / "out/big"), manifest_digests(dir_ / "ref"));
  auto v = test::run_cli({"verify", dir_ / "out/big"});
  EXPECT_EQ(v.exit_code, 0) << v.err;
  coordinator->kill(SIGTERM);
  coordinator->wait();
}

// A network partition: the worker's proxy stops forwarding for longer than the lease TTL.
// The task runs on another worker; when the link comes back the partitioned worker's
// result is refused or dropped (fencing), and the output is unchanged.
TEST_F(Cluster, PartitionedWorkerLosesItsLeaseAndItsResultIsRefused) {
  start_coordinator();
  const std::string via = start_proxy({"--pause-file", dir_ / "partition"});
  start_worker("cut", "task=1500", false, {}, via);
  ASSERT_EQ(cli({"submit", write_job("n1")}).exit_code, 0);
  std::string task;
  wait_for("n1", [&task](const json& s) {
    for (const auto& t : s["tasks"])
      if (t["state"] == "LEASED") task = t["id"];
    return !task.empty();
  });
  test::write_text(dir_ / "partition", "");  // cut off
  start_worker("other");
  const json s = wait_for("n1", succeeded);
  fs::remove(dir_ / "partition");  // the link comes back
  EXPECT_TRUE(stale_result_dropped("cut")) << *read_file(dir_ / "cut.log");
  for (const auto& t : s["tasks"])
    if (t["id"] == task) {
      EXPECT_GE(t["attempt"].get<int>(), 2);
    }
  EXPECT_EQ(status("n1")["state"], "SUCCEEDED");
  expect_reference_output("n1");
}

TEST_F(Cluster, WorkerStopsCleanlyOnSigterm) {
  start_coordinator();
  test::Process* w = start_worker("a");
  for (int i = 0; i < 200; ++i) {  // registered: its handlers are in place
    auto log = read_file(dir_ / "a.log");
    if (log.ok() && log->find("registered") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  w->kill(SIGTERM);
  EXPECT_EQ(w->wait(5000), 0);
  auto ws = cli({"workers", "-o", "json"});
  EXPECT_EQ(json::parse(ws.out)["workers"].size(), 1u);
}

TEST_F(Cluster, ATaskThatFailsThreeTimesFailsTheJobWithItsError) {
  // A NaN in layer 2's o_proj: the task fails on every attempt.
  fs::create_directories(dir_ / "models/poisoned");
  fs::copy_file(dir_ / "models/stories/config.json", dir_ / "models/poisoned/config.json");
  auto bytes = test::read_bytes(dir_ / "models/stories/model.safetensors");
  {
    auto f = SafetensorsFile::open(dir_ / "models/stories/model.safetensors");
    const TensorInfo* t = (*f)->find("model.layers.2.self_attn.o_proj.weight");
    const uint64_t off = (*f)->data_offset() + t->begin + 2 * 10;
    bytes[off] = 0xc0;
    bytes[off + 1] = 0x7f;
  }
  test::write_bytes(dir_ / "models/poisoned/model.safetensors", bytes);
  start_coordinator();
  start_worker("a");
  test::write_text(dir_ / "bad.yaml", "name: bad\nmodel: " + (dir_ / "models/poisoned") + "\noutput: " + (dir_ / "out/bad") + "\n");
  auto r = cli({"submit", dir_ / "bad.yaml", "--wait"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  const json s = status("bad");
  EXPECT_EQ(s["state"], "FAILED");
  EXPECT_NE(s["error"].get<std::string>().find(
                "task job-0001/layer.2 failed 3 times: model.layers.2.self_attn.o_proj.weight: element 10"),
            std::string::npos)
      << s["error"];
  EXPECT_FALSE(fs::exists(dir_ / "out/bad"));
}

// A CUDA worker and a CPU worker on one magnitude + RTN job: the same bytes as the ops on
// the CPU.
TEST_F(Cluster, CudaAndCpuWorkersProduceTheCpuBytes) {
  start_coordinator();
  if (std::string why; !cuda_worker_available(&why)) GTEST_SKIP() << "no CUDA device for a worker: " << why;
  start_worker("gpu", "task=200", false, {"--device", "cuda:0"});
  start_worker("cpu", "task=200", true, {"--device", "cpu"});
  auto r = cli({"submit", write_job("g1", /*prune=*/true), "--wait"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  expect_reference_output("g1", /*prune=*/true);
  auto w = cli({"workers"});
  EXPECT_NE(w.out.find("cuda:0 ("), std::string::npos) << w.out;
}

// A gauge or counter from the coordinator's /metrics ("shardpress_blobs"); -1 if absent.
int64_t metric(const fs::path& state_dir, const std::string& name) {
  auto addr = read_file(state_dir / "metrics.addr");
  if (!addr.ok()) return -1;
  const std::string body = http_get(addr->substr(0, addr->find('\n')), "/metrics");
  const size_t pos = body.find("\n" + name + " ");
  return pos == std::string::npos ? -1 : std::stoll(body.substr(pos + name.size() + 2));
}

// `shardpress delete`: refused (exit 2, saying to cancel first) while the job runs;
// `-o json` prints the deleted job; the job is gone (status exit 2); a second job on the
// same model keeps its blobs; deleting both leaves no blob, and the outputs stay.
TEST_F(Cluster, DeleteRemovesAFinishedJobAndWhatOnlyItOwned) {
  start_coordinator();
  start_worker("a", "task=300");
  ASSERT_EQ(cli({"submit", write_job("d1")}).exit_code, 0);
  auto running = cli({"delete", "d1"});
  EXPECT_EQ(running.exit_code, 2) << running.err;
  EXPECT_NE(running.err.find("cancel it first"), std::string::npos) << running.err;
  wait_for("d1", succeeded);
  ASSERT_EQ(cli({"submit", write_job("d2"), "--wait"}).exit_code, 0);
  const int64_t with_both = metric(dir_ / "state", "shardpress_blobs");
  ASSERT_GT(with_both, 0);

  auto del = cli({"delete", "d1", "-o", "json"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  const json deleted = json::parse(del.out);
  EXPECT_EQ(deleted["id"], "job-0001");
  EXPECT_EQ(deleted["state"], "SUCCEEDED");
  EXPECT_EQ(cli({"status", "d1"}).exit_code, 2);
  auto again = cli({"delete", "d1"});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("d1"), std::string::npos) << again.err;
  const int64_t with_one = metric(dir_ / "state", "shardpress_blobs");
  EXPECT_GT(with_one, 0) << "d2's blobs went with d1's";
  EXPECT_LE(with_one, with_both);
  EXPECT_EQ(status("d2")["state"], "SUCCEEDED");
  expect_reference_output("d1");  // the output checkpoint is the user's: it stays

  auto plain = cli({"delete", "d2"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_NE(plain.err.find("deleted job-0002 (d2)"), std::string::npos) << plain.err;
  EXPECT_EQ(metric(dir_ / "state", "shardpress_blobs"), 0);
  EXPECT_EQ(json::parse(cli({"list", "-o", "json"}).out).value("jobs", json::array()).size(), 0u);
  // A restart loads no deleted job, and new ids continue after the deleted ones.
  coordinator_->kill(SIGTERM);
  coordinator_->wait();
  start_coordinator();
  ASSERT_EQ(cli({"submit", write_job("d3")}).exit_code, 0);
  EXPECT_EQ(status("d3")["id"], "job-0003");
}

// --retention: a finished job is deleted by the coordinator itself once it has been
// finished that long; a bad duration is refused at start (exit 2).
TEST_F(Cluster, RetentionDeletesFinishedJobs) {
  test::Process bad(test::bin_dir() + "/shardpress-coordinator",
                    {"--listen", "127.0.0.1:0", "--data-dir", dir_ / "bad", "--model-root", dir_ / "models",
                     "--output-root", dir_ / "out", "--retention", "soon"},
                    std::map<std::string, std::string>{}, dir_ / "bad.log");
  EXPECT_EQ(bad.wait(10'000), 2);
  EXPECT_NE(read_file(dir_ / "bad.log")->find("--retention"), std::string::npos) << *read_file(dir_ / "bad.log");

  start_coordinator("", {"--retention", "2s"});
  start_worker("a");
  ASSERT_EQ(cli({"submit", write_job("r1"), "--wait"}).exit_code, 0);
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {  // 2 s of retention, then the next lease timer
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    gone = cli({"status", "r1"}).exit_code == 2;
  }
  EXPECT_TRUE(gone) << "r1 was not deleted after its retention";
  EXPECT_EQ(metric(dir_ / "state", "shardpress_blobs"), 0);
  expect_reference_output("r1");
}

}  // namespace
}  // namespace sp
