// The end-to-end fixture: a real shardpress-coordinator and shardpress-worker processes
// on 127.0.0.1 with the real RocksDB in a temporary folder, driven by the real CLI.
#pragma once

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "checkpoint/local_compress.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testutil/fixtures.h"
#include "tests/testutil/process.h"

namespace sp {

namespace fs = std::filesystem;
using json = nlohmann::json;

inline std::map<std::string, std::string> manifest_digests(const std::string& dir) {
  std::map<std::string, std::string> out;
  auto text = read_file(dir + "/shardpress_manifest.json");
  if (!text.ok()) return out;
  const json manifest = json::parse(*text);  // named: a temporary in the range-init would dangle
  for (const auto& [name, e] : manifest["tensors"].items()) out[name] = e["digest"];
  return out;
}

// The checkpoint the ops produce directly (one process, no coordinator), per setting.
inline const std::map<std::string, std::string>& reference(bool prune) {
  static std::map<bool, std::map<std::string, std::string>> cache;
  if (!cache.count(prune)) {
    test::TempDir d;
    LocalCompressOptions o;
    if (prune) o.settings.prune = PruneSettings{PruneScope::kRow, 0.3};
    auto r = compress_model_local(test::fixture("stories260k/hf-bf16"), d / "ref", o);
    EXPECT_TRUE(r.ok()) << r.status();
    cache[prune] = manifest_digests(d / "ref");
  }
  return cache[prune];
}

// Throw-away certificates: a CA, a coordinator certificate for 127.0.0.1, a client
// certificate, and an unrelated CA.
inline void make_certificates(const std::string& dir) {
  const std::string script = "set -e; cd '" + dir + "'\n"
      "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out \"$1\" 2>/dev/null; }\n"
      "key ca.key; openssl req -x509 -new -key ca.key -out ca.pem -days 1 -subj /CN=test-ca 2>/dev/null\n"
      "key other.key; openssl req -x509 -new -key other.key -out other.pem -days 1 -subj /CN=other-ca 2>/dev/null\n"
      "key server.key; openssl req -new -key server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null\n"
      "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext\n"
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 "
      "-extfile san.ext 2>/dev/null\n"
      "key client.key; openssl req -new -key client.key -out client.csr -subj /CN=worker 2>/dev/null\n"
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 1 2>/dev/null\n";
  test::write_text(dir + "/make.sh", script);
  ASSERT_EQ(std::system(("bash '" + dir + "/make.sh'").c_str()), 0) << "openssl failed";
}

class Cluster : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ / "models");
    fs::create_directories(dir_ / "out");
    fs::copy(test::fixture("stories260k/hf-bf16"), dir_ / "models/stories");
  }
  void TearDown() override {
    if (HasFailure()) {
      for (const auto& e : fs::directory_iterator(dir_.path()))
        if (e.path().extension() == ".log")
          std::fprintf(stderr, "---- %s\n%s\n", e.path().c_str(), read_file(e.path().string())->c_str());
    }
  }

  // The first start picks a free port; a restart reuses it, as a lab's coordinator does.
  // `hooks`: the daemons' hidden --test-hooks ("import=40,assemble=15,enospc=100000").
  void start_coordinator(const std::string& hooks = "", std::vector<std::string> extra = {}) {
    const std::string listen = addr_.empty() ? "127.0.0.1:0" : addr_;
    fs::remove(dir_ / "state/coordinator.addr");
    std::vector<std::string> args{"--listen", listen, "--data-dir", dir_ / "state", "--model-root",
                                  dir_ / "models", "--output-root", dir_ / "out", "--lease-ttl", "1s",
                                  "--heartbeat-interval", "200ms", "--metrics-listen", "127.0.0.1:0"};
    if (!hooks.empty()) args.insert(args.end(), {"--test-hooks", hooks});
    args.insert(args.end(), extra.begin(), extra.end());
    coordinator_ = std::make_unique<test::Process>(test::bin_dir() + "/shardpress-coordinator", args,
                                                   std::map<std::string, std::string>{}, dir_ / "coordinator.log");
    for (int i = 0; i < 500 && !fs::exists(dir_ / "state/coordinator.addr"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto addr = read_file(dir_ / "state/coordinator.addr");
    ASSERT_TRUE(addr.ok()) << "coordinator did not start";
    addr_ = addr->substr(0, addr->find('\n'));
  }

  // `fetch`: never read the source model directly (as a PC without the model files).
  test::Process* start_worker(const std::string& name, const std::string& hooks = "", bool fetch = false,
                              std::vector<std::string> extra = {}, std::string via = "") {
    std::vector<std::string> args{"--coordinator", via.empty() ? addr_ : via, "--cache-dir",
                                  dir_ / ("cache-" + name), "--memory", "1GiB"};
    if (fetch) args.push_back("--no-direct-read");
    if (!hooks.empty()) args.insert(args.end(), {"--test-hooks", hooks});
    args.insert(args.end(), extra.begin(), extra.end());
    workers_[name] = std::make_unique<test::Process>(test::bin_dir() + "/shardpress-worker", args,
                                                     std::map<std::string, std::string>{}, dir_ / (name + ".log"));
    return workers_[name].get();
  }

  // Waits (bounded) until `count` workers have registered with the coordinator.
  void wait_for_workers(size_t count) {
    for (int i = 0; i < 400; ++i) {
      auto w = cli({"workers", "-o", "json"});
      if (w.exit_code == 0 && json::parse(w.out).value("workers", json::array()).size() == count) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    ADD_FAILURE() << count << " workers did not register";
  }

  // Whether a worker can use CUDA device 0 here (a CPU-only build or no GPU: no), and why not.
  bool cuda_worker_available(std::string* why) {
    test::Process probe(test::bin_dir() + "/shardpress-worker",
                        {"--device", "cuda:0", "--cache-dir", dir_ / "probe", "--coordinator", "127.0.0.1:1"},
                        std::map<std::string, std::string>{}, dir_ / "probe.log");
    const int rc = probe.wait(10'000);
    auto log = read_file(dir_ / "probe.log");
    const bool refused = rc == 2 && log.ok() && log->find("--device cuda:0") != std::string::npos;
    if (refused && why) *why = *log;
    return !refused;
  }

  // A fault_proxy in front of the coordinator; returns its address.
  std::string start_proxy(std::vector<std::string> faults) {
    std::vector<std::string> args{"--upstream", addr_, "--addr-file", dir_ / "proxy.addr", "--stats-file",
                                  dir_ / "proxy.stats"};
    args.insert(args.end(), faults.begin(), faults.end());
    proxy_ = std::make_unique<test::Process>(test::bin_dir() + "/fault_proxy", args,
                                             std::map<std::string, std::string>{}, dir_ / "proxy.log");
    // The address is complete once its line ends (the proxy renames a whole file into place).
    absl::StatusOr<std::string> a = absl::NotFoundError("not yet");
    for (int i = 0; i < 500 && !(a.ok() && a->find('\n') != std::string::npos); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      a = read_file(dir_ / "proxy.addr");
    }
    const bool started = a.ok() && a->find('\n') != std::string::npos;
    EXPECT_TRUE(started) << "fault_proxy did not start";
    return started ? a->substr(0, a->find('\n')) : "";
  }

  // Waits (bounded) until worker `name` has dropped a stale result: its heartbeat learned
  // the lease was revoked, or the coordinator refused the stale attempt.
  bool stale_result_dropped(const std::string& name) {
    for (int i = 0; i < 200; ++i) {
      auto log = read_file(dir_ / (name + ".log"));
      if (log.ok() && (log->find("lease revoked, result dropped") != std::string::npos ||
                       log->find("result refused") != std::string::npos))
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  // Runs `shardpress local ARGS` with slow tasks and kills it (SIGKILL) once its progress
  // lines (stderr is not a terminal) say `done_text` ("2/5 tasks"). False if it never does.
  bool kill_local_when(const std::vector<std::string>& args, const std::string& done_text, const std::string& log) {
    std::vector<std::string> slow = args;
    slow.insert(slow.end(), {"--test-hooks", "task=400"});
    test::Process local(SP_CLI_PATH, slow, std::map<std::string, std::string>{}, dir_ / log);
    bool seen = false;
    for (int i = 0; i < 600 && !seen; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      auto text = read_file(local.log_path());
      seen = text.ok() && text->find(done_text) != std::string::npos;
    }
    local.kill(SIGKILL);
    local.wait();
    if (!seen) ADD_FAILURE() << *read_file(local.log_path());
    return seen;
  }

  test::CliResult cli(std::vector<std::string> args) {
    args.insert(args.begin(), {"--coordinator", addr_});
    return test::run_cli(args);
  }

  std::string write_job(const std::string& name, bool prune = false) {
    const std::string path = dir_ / (name + ".yaml");
    test::write_text(path, "name: " + name + "\nmodel: " + (dir_ / "models/stories") + "\noutput: " +
                               (dir_ / ("out/" + name)) + (prune ? "\nprune: {method: magnitude, sparsity: 0.3}\n" : "\n"));
    return path;
  }

  json status(const std::string& job) {
    auto r = cli({"status", job, "-o", "json"});
    if (r.exit_code != 0) return json();
    return json::parse(r.out);
  }

  // Polls the job's status until `pred` holds (bounded).
  json wait_for(const std::string& job, const std::function<bool(const json&)>& pred, int timeout_ms = 30'000) {
    for (int waited = 0; waited < timeout_ms; waited += 50) {
      json s = status(job);
      if (!s.is_null() && pred(s)) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "timed out waiting on " << job << ": " << status(job).dump();
    return json();
  }

  static bool succeeded(const json& s) { return s["state"] == "SUCCEEDED"; }
  static int done(const json& s) { return s.value("tasks_done", 0); }
  static std::map<std::string, int> done_attempts(const json& s) {
    std::map<std::string, int> out;
    for (const auto& t : s["tasks"])
      if (t["state"] == "DONE") out[t["id"]] = t["attempt"];
    return out;
  }

  void expect_reference_output(const std::string& name, bool prune = false) {
    const std::string out = dir_ / ("out/" + name);
    EXPECT_EQ(manifest_digests(out), reference(prune)) << "output differs from what the ops produce directly";
    auto v = test::run_cli({"verify", out, "--against", dir_ / "models/stories"});
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
    for (const auto& e : fs::directory_iterator(dir_ / "out"))
      EXPECT_NE(e.path().filename().string()[0], '.') << "left behind: " << e.path();
  }

  test::TempDir dir_;
  std::string addr_;
  std::unique_ptr<test::Process> coordinator_;
  std::unique_ptr<test::Process> proxy_;
  std::map<std::string, std::unique_ptr<test::Process>> workers_;
};

}  // namespace sp
