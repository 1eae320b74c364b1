// Calibrated jobs end to end (GPTQ, Wanda, SparseGPT; sequential and pipelined) on real
// coordinator and worker processes: the output equals what the ops produce in one process
// (`compress_model_local` with the same settings), also after a worker is killed in the
// middle of a layer and after the coordinator is killed with layers done.
#include "fmt/format.h"
#include "jobs/job_plan.h"
#include "ops/linalg.h"
#include "jobs/job_yaml.h"
#include "formats/token_ids.h"
#include "tests/e2e/cluster.h"

namespace sp {
namespace {

class CalibrationCluster : public Cluster {
 protected:
  void SetUp() override {
    Cluster::SetUp();
    fs::copy_file(test::fixture("stories260k/text/calib.ids.txt"), dir_ / "models/calib.ids.txt");
    fs::copy_file(test::fixture("stories260k/text/eval.ids.txt"), dir_ / "models/eval.ids.txt");
  }

  std::string spec_text(const std::string& name, const std::string& body) {
    return "name: " + name + "\nmodel: " + (dir_ / "models/stories") + "\noutput: " + (dir_ / ("out/" + name)) +
           "\n" + body + "\ncalibrate: {ids: " + (dir_ / "models/calib.ids.txt") + ", samples: 32, mode: " + mode_ + calibrate_extra_ +
           "}\n";
  }
  std::string mode_ = "sequential";
  std::string calibrate_extra_;  // more calibrate keys, ", key: value"
  std::string write_calibrated_job(const std::string& name, const std::string& body) {
    const std::string path = dir_ / (name + ".yaml");
    test::write_text(path, spec_text(name, body));
    return path;
  }

  // What compress_model_local writes for the same spec (digests by tensor).
  std::map<std::string, std::string> reference_for(const std::string& name, const std::string& body) {
    auto spec = parse_job_yaml(spec_text(name, body), "spec");
    EXPECT_TRUE(spec.ok()) << spec.status();
    LocalCompressOptions o;
    o.settings = compress_settings(*spec);
    o.calibration = *read_token_ids(dir_ / "models/calib.ids.txt", 512, 32, 0);
    o.sequential = spec->calibrate().mode() != "pipelined";
    o.activations_dtype = activations_dtype(*spec);
    set_blas_threads(1);
    test::TempDir d;
    auto r = compress_model_local(dir_ / "models/stories", d / "ref", o);
    EXPECT_TRUE(r.ok()) << r.status();
    return manifest_digests(d / "ref");
  }

  void expect_output(const std::string& name, const std::string& body) {
    const std::string out = dir_ / ("out/" + name);
    const auto got = manifest_digests(out);
    EXPECT_EQ(got.size(), 222u);
    const auto ref = reference_for(name, body);
    EXPECT_EQ(got, ref) << "output differs from what the ops produce in one process";
    auto v = test::run_cli({"verify", out});
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  }
};

TEST_F(CalibrationCluster, GptqJobIsByteIdenticalAfterKillingAWorkerMidLayerAndTheCoordinator) {
  const std::string body = "quantize: {method: gptq}";
  start_coordinator();
  test::Process* a = start_worker("a", "task=700");
  ASSERT_EQ(cli({"submit", write_calibrated_job("g1", body)}).exit_code, 0);
  // Worker a holds layer.1 (layer.0 done): kill it in the middle of that layer.
  wait_for("g1", [](const json& s) {
    for (const auto& t : s["tasks"])
      if (t["id"] == "job-0001/layer.1" && t["state"] == "LEASED") return true;
    return false;
  });
  a->kill(SIGKILL);
  a->wait();
  start_worker("b", "task=300", /*fetch=*/true);
  const json before = wait_for("g1", [](const json& s) { return done(s) >= 3; });
  const auto finished = done_attempts(before);
  coordinator_->kill(SIGKILL);
  coordinator_->wait();
  start_coordinator();
  const json after = wait_for("g1", succeeded, 60'000);
  const auto attempts = done_attempts(after);
  for (const auto& [id, attempt] : finished) EXPECT_EQ(attempts.at(id), attempt) << id << " was redone";
  for (const auto& t : after["tasks"])
    if (t["id"] == "job-0001/layer.1") {
      EXPECT_GE(t["attempt"].get<int>(), 2) << "the killed layer must have rerun";
    }
  expect_output("g1", body);
}

// calibrate.checkpoint_every: 4 keeps the boundaries of layer.0-2 on the worker that made
// them. Killed with two of them kept, that worker is lost after a lease TTL (1 s); the chain
// runs again from the start on the other worker, and the output is still what one process
// writes.
TEST_F(CalibrationCluster, KeptBoundariesOfAKilledWorkerAreComputedAgainElsewhere) {
  const std::string body = "quantize: {method: gptq}";
  calibrate_extra_ = ", checkpoint_every: 4";
  start_coordinator();
  test::Process* a = start_worker("a", "task=500");
  ASSERT_EQ(cli({"submit", write_calibrated_job("k1", body)}).exit_code, 0);
  wait_for("k1", [](const json& s) {
    for (const auto& t : s["tasks"])
      if (t["id"] == "job-0001/layer.2" && t["state"] == "LEASED") return true;
    return false;
  });
  a->kill(SIGKILL);
  a->wait();
  start_worker("b", "", /*fetch=*/true);
  const json after = wait_for("k1", succeeded, 60'000);
  for (const auto& t : after["tasks"])
    if (t["id"] == "job-0001/layer.0" || t["id"] == "job-0001/layer.1") {
      EXPECT_GE(t["attempt"].get<int>(), 2) << t["id"] << ": its kept boundary died with worker a";
      EXPECT_NE(t["worker_id"], "") << t["id"];
    }
  auto events = cli({"events", "k1"});
  EXPECT_NE(events.out.find("are lost (the worker is gone); runs again"), std::string::npos) << events.out;
  expect_output("k1", body);
}

TEST_F(CalibrationCluster, PipelinedSparseGptJobOnTwoWorkers) {
  const std::string body = "prune: {method: sparsegpt, sparsity: 0.3}\nquantize: {method: gptq}";
  mode_ = "pipelined";
  const std::string path = write_calibrated_job("p1", body);
  start_coordinator();
  start_worker("a");
  start_worker("b", "", /*fetch=*/true);
  auto r = cli({"submit", path, "--wait"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const json s = status("p1");
  int forward = 0;
  for (const auto& t : s["tasks"]) forward += t["id"].get<std::string>().find("/fwd.") != std::string::npos;
  EXPECT_EQ(forward, 4) << "pipelined: one forward task per layer but the last";
  expect_output("p1", body);
}

// calibrate.activations: bfloat16 hands half the bytes from layer to layer (the job
// succeeds only if every boundary a worker returns is bfloat16 of the planned shape), and
// the output is what one process writes with the same rounding — not the float32 job's.
// Worker a says --threads 2: with OpenBLAS on two threads this job's bytes differed from
// the one-thread run in 85 tensors; workers compute with one.
TEST_F(CalibrationCluster, BfloatActivationsOnAWorkerWithThreadsAreWhatOneProcessWrites) {
  const std::string body = "quantize: {method: gptq}";
  calibrate_extra_ = ", activations: bfloat16";
  const std::string path = write_calibrated_job("b1", body);
  start_coordinator();
  start_worker("a", "", /*fetch=*/true, {"--threads", "2"});  // the only worker: every layer runs there
  auto r = cli({"submit", path, "--wait"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  expect_output("b1", body);
  calibrate_extra_.clear();
  EXPECT_NE(manifest_digests(dir_ / "out/b1"), reference_for("b1", body)) << "bfloat16 boundaries changed nothing";
}

// `eval --remote`: the forward layer by layer on the workers, then the head; the same
// perplexity, to the last bit, as `eval` in one process — for the original model and for
// a compressed checkpoint (decoded by the coordinator while importing).
// (A GGUF file too: the coordinator imports it dequantized, as a bitsandbytes checkpoint.)
TEST_F(CalibrationCluster, RemoteEvalMatchesLocalEval) {
  start_coordinator();
  start_worker("a");
  start_worker("b", "", /*fetch=*/true);
  ASSERT_EQ(test::run_cli({"compress", dir_ / "models/stories", dir_ / "models/stories-gptq", "--method", "gptq",
                           "--act-order", "--calib-ids", dir_ / "models/calib.ids.txt", "--calib-samples", "32"})
                .exit_code,
            0);
  ASSERT_EQ(test::run_cli({"compress", dir_ / "models/stories", dir_ / "models/stories-q4km.gguf", "--format", "gguf",
                           "--type", "Q4_K_M"})
                .exit_code,
            0);
  for (const std::string m : {"stories", "stories-gptq", "stories-q4km.gguf"}) {
    auto local = test::run_cli({"eval", dir_ / ("models/" + m), "--ids", dir_ / "models/eval.ids.txt", "--samples",
                                "40", "-o", "json"});
    ASSERT_EQ(local.exit_code, 0) << local.err;
    auto remote = cli({"eval", dir_ / ("models/" + m), "--ids", dir_ / "models/eval.ids.txt", "--samples", "40",
                       "--remote", "-o", "json"});
    ASSERT_EQ(remote.exit_code, 0) << remote.out << remote.err;
    const json l = json::parse(local.out), r = json::parse(remote.out);
    EXPECT_EQ(r["predictions"], 40 * 255);
    EXPECT_EQ(r["sequences"], 40);
    EXPECT_EQ(r["seq_len"], 256);
    EXPECT_EQ(r["mean_nll"].get<double>(), l["mean_nll"].get<double>()) << m;
    EXPECT_EQ(r["quantized"], m != "stories");
  }
  const json s = status("eval-stories");
  EXPECT_EQ(s["state"], "SUCCEEDED");
  EXPECT_EQ(s["tasks"].size(), 6u) << "5 forward tasks and the head";
  EXPECT_FALSE(fs::exists(dir_ / "out/eval-stories"));
  // Bad input: ids outside the vocabulary, a folder outside the model root.
  test::write_text(dir_ / "models/bad.ids.txt", "1 2 3\n4 5 900\n");
  auto bad = cli({"eval", dir_ / "models/stories", "--ids", dir_ / "models/bad.ids.txt", "--remote"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("line 2: token id 900 is outside"), std::string::npos) << bad.err;
  auto outside = cli({"eval", test::fixture("stories260k/hf-bf16"), "--ids", dir_ / "models/eval.ids.txt", "--remote"});
  EXPECT_NE(outside.exit_code, 0);
  EXPECT_NE(outside.err.find("outside the coordinator's allowed root"), std::string::npos) << outside.err;
}

// GPTQ with the forward, Hessians and column loops on the GPU: a CUDA worker's output is
// a valid checkpoint whose perplexity is the CPU's within rounding (GPTQ on the GPU sums
// in another order, so bytes may differ), and `compress --device cuda:0` in one process
// gives the worker's bytes exactly (same device kind, same budget: deterministic).
TEST_F(CalibrationCluster, GptqOnACudaWorkerMatchesTheCpuWithinRounding) {
  start_coordinator();
  if (std::string why; !cuda_worker_available(&why)) GTEST_SKIP() << "no CUDA device for a worker: " << why;
  const std::string body = "quantize: {method: gptq}";
  start_worker("gpu", "", /*fetch=*/false, {"--device", "cuda:0", "--gpu-memory", "1GiB"});
  auto r = cli({"submit", write_calibrated_job("c1", body), "--wait"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string out = dir_ / "out/c1";
  EXPECT_EQ(test::run_cli({"verify", out}).exit_code, 0);
  ASSERT_EQ(test::run_cli({"compress", dir_ / "models/stories", dir_ / "models/local-gpu", "--method", "gptq",
                           "--act-order", "--calib-ids", dir_ / "models/calib.ids.txt", "--calib-samples", "32",
                           "--device", "cuda:0", "--gpu-memory", "1GiB"})
                .exit_code,
            0);
  EXPECT_EQ(manifest_digests(dir_ / "models/local-gpu"), manifest_digests(out));
  test::TempDir d;
  LocalCompressOptions o;
  o.settings = compress_settings(*parse_job_yaml(spec_text("c1", body), "spec"));
  o.calibration = *read_token_ids(dir_ / "models/calib.ids.txt", 512, 32, 0);
  ASSERT_TRUE(compress_model_local(dir_ / "models/stories", d / "cpu", o).ok());
  auto nll = [&](const std::string& dir) {
    auto e = test::run_cli({"eval", dir, "--ids", dir_ / "models/eval.ids.txt", "--samples", "40", "-o", "json"});
    EXPECT_EQ(e.exit_code, 0) << e.err;
    return json::parse(e.out)["mean_nll"].get<double>();
  };
  const double gpu = nll(out), cpu = nll(d / "cpu");
  std::printf("eval perplexity: GPU worker %.4f, CPU %.4f\n", std::exp(gpu), std::exp(cpu));
  EXPECT_NEAR(gpu, cpu, 0.005 * cpu) << "GPU " << std::exp(gpu) << " vs CPU " << std::exp(cpu) << " perplexity";
}

TEST_F(CalibrationCluster, BadCalibrationInputIsRefusedAtSubmit) {
  start_coordinator();
  // Methods that need text, without text.
  test::write_text(dir_ / "nocal.yaml", "name: nocal\nmodel: " + (dir_ / "models/stories") + "\noutput: " +
                                            (dir_ / "out/nocal") + "\nprune: {method: wanda}\n");
  auto r = cli({"submit", dir_ / "nocal.yaml"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("needs calibration text: set 'calibrate.ids'"), std::string::npos) << r.err;
  // An id outside the vocabulary.
  test::write_text(dir_ / "models/bad.ids.txt", "1 2 3 4\n5 600 7 8\n");
  test::write_text(dir_ / "bad.yaml", "name: bad\nmodel: " + (dir_ / "models/stories") + "\noutput: " +
                                          (dir_ / "out/bad") + "\nquantize: {method: gptq}\ncalibrate: {ids: " +
                                          (dir_ / "models/bad.ids.txt") + ", samples: 2}\n");
  r = cli({"submit", dir_ / "bad.yaml"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("line 2: token id 600 is outside the model's vocabulary [0, 512)"), std::string::npos) << r.err;
  // Too few lines, and a file outside the model root.
  test::write_text(dir_ / "models/two.ids.txt", "1 2 3 4\n5 6 7 8\n");
  test::write_text(dir_ / "few.yaml", "name: few\nmodel: " + (dir_ / "models/stories") + "\noutput: " +
                                          (dir_ / "out/few") + "\nquantize: {method: gptq}\ncalibrate: {ids: " +
                                          (dir_ / "models/two.ids.txt") + ", samples: 5}\n");
  r = cli({"submit", dir_ / "few.yaml"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("5 sequences asked for, the file has 2"), std::string::npos) << r.err;
  test::write_text(dir_ / "outside.ids.txt", "1 2 3\n");
  test::write_text(dir_ / "outside.yaml", "name: outside\nmodel: " + (dir_ / "models/stories") + "\noutput: " +
                                              (dir_ / "out/outside") + "\nquantize: {method: gptq}\ncalibrate: {ids: " +
                                              (dir_ / "outside.ids.txt") + "}\n");
  r = cli({"submit", dir_ / "outside.yaml"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("outside the coordinator's allowed root"), std::string::npos) << r.err;
  auto list = cli({"list", "-o", "json"});
  EXPECT_EQ(json::parse(list.out)["jobs"].size(), 0u) << "nothing may be stored for a refused job";
}

// A sweep of four calibrated variants (Wanda and SparseGPT, each with RTN and GPTQ) on one
// model: layer 0's dense pass runs once — one variant returns its statistics, the other
// three take them — and every output is still byte-identical to what the ops produce for
// that variant alone. The report says what was shared.
TEST_F(CalibrationCluster, SweepRunsLayerZerosDensePassOnceAndEachOutputIsStillItsOwn) {
  start_coordinator();
  const std::string file = dir_ / "sh.yaml";
  test::write_text(file, "name: sh\nbase:\n  model: " + (dir_ / "models/stories") + "\n  output: " + (dir_ / "out/sh") +
                             "\n  prune: {sparsity: 0.3}\n  calibrate: {ids: " + (dir_ / "models/calib.ids.txt") +
                             ", samples: 32}\naxes:\n  prune.method: [wanda, sparsegpt]\n  quantize.method: [rtn, gptq]\n");
  // Submitted before any worker runs, so that every variant is there when layer 0 is leased.
  auto submitted = cli({"sweep", file});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.out << submitted.err;
  start_worker("a", "task=100");
  start_worker("b", "task=100");
  auto waited = cli({"sweep", file, "--wait"});
  ASSERT_EQ(waited.exit_code, 0) << waited.out << waited.err;

  int returned = 0, taken = 0;
  for (const char* method : {"wanda", "sparsegpt"})
    for (const char* quant : {"rtn", "gptq"}) {
      const std::string label = std::string(method) + "-" + quant;
      const std::string events = cli({"events", "sh." + label}).out;
      for (size_t at = 0; (at = events.find("returns its dense calibration statistics for 3 other jobs", at)) !=
                          std::string::npos;
           ++at)
        ++returned;
      for (size_t at = 0; (at = events.find("takes the dense calibration statistics", at)) != std::string::npos; ++at)
        ++taken;
      EXPECT_EQ(events.find("layer.1: takes"), std::string::npos) << "later layers read each variant's own activations";
      const std::string body = fmt::format("prune: {{method: {}, sparsity: 0.3}}\nquantize: {{method: {}}}", method, quant);
      EXPECT_EQ(manifest_digests(dir_ / ("out/sh/" + label)), reference_for("sh." + label, body))
          << label << ": output differs from what the ops produce for it alone";
    }
  EXPECT_EQ(returned, 1) << "one variant computes layer 0's dense statistics for the others";
  EXPECT_EQ(taken, 3) << "the three others take them";
  auto report = cli({"report", file});
  EXPECT_EQ(report.exit_code, 0) << report.err;
  EXPECT_NE(report.out.find("shared: 3 calibration tasks took the dense statistics another variant computed"),
            std::string::npos)
      << report.out;
}

}  // namespace
}  // namespace sp
