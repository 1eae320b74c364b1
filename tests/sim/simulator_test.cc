// `shardpress simulate`: the lab grammar, the work counted per task, and what the real
// scheduler does on a modelled lab (which worker gets which task, what crosses which
// link, what the coordinator's disk holds).
#include "sim/simulator.h"

#include <gtest/gtest.h>

#include "formats/model.h"
#include "jobs/job_plan.h"
#include "jobs/job_yaml.h"
#include "sim/lab.h"
#include "sim/task_cost.h"
#include "tests/testutil/fixtures.h"

namespace sp::sim {
namespace {

using shardpress::v1::JobSpec;

TEST(Lab, RatesReadAsWritten) {
  EXPECT_DOUBLE_EQ(*parse_rate("110MB/s"), 110e6);
  EXPECT_DOUBLE_EQ(*parse_rate("1.5GB/s"), 1.5e9);
  EXPECT_DOUBLE_EQ(*parse_rate("512 MiB/s"), 512.0 * 1048576);
  EXPECT_NEAR(*parse_rate("1GbE"), 110e6, 1e6);  // what a TCP stream carries over 1 GbE
  EXPECT_NEAR(*parse_rate("10Gbit"), 1100e6, 1e7);
  for (const char* bad : {"", "fast", "-5MB/s", "0GB/s", "5 parsecs", "MB/s"}) {
    auto r = parse_rate(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("not a rate"), std::string_view::npos) << r.status();
  }
}

TEST(Lab, GroupsCountsAndKeys) {
  auto lab = parse_lab("4*gtx1080ti", "", "", false, 2);
  ASSERT_TRUE(lab.ok()) << lab.status();
  ASSERT_EQ(lab->workers.size(), 4u);
  EXPECT_EQ(lab->workers[3].id, "w4");
  EXPECT_TRUE(lab->workers[0].device.gpu);
  EXPECT_EQ(lab->workers[0].device.vram, 11ull << 30);
  EXPECT_EQ(lab->workers[0].ram, 32ull << 30);
  EXPECT_FALSE(lab->workers[0].sees_source);
  EXPECT_NEAR(lab->coordinator_nic, 110e6, 1e6);

  auto mixed = parse_lab("2*cpu:ram=8GiB:nic=10Gbit:source=yes+gtx1080ti:vram=8GiB", "10Gbit", "2GB/s",
                         false, 2);
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  ASSERT_EQ(mixed->workers.size(), 3u);
  EXPECT_EQ(mixed->workers[0].ram, 8ull << 30);
  EXPECT_TRUE(mixed->workers[1].sees_source);
  EXPECT_NEAR(mixed->workers[0].nic, 1100e6, 1e7);
  EXPECT_EQ(mixed->workers[2].device.vram, 8ull << 30);
  EXPECT_DOUBLE_EQ(mixed->coordinator_disk, 2e9);

  auto local = parse_lab("2*cpu", "", "", true, 2);  // as `shardpress local`: 4 GiB each, the files in reach
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local->workers[0].ram, 4ull << 30);
  EXPECT_TRUE(local->workers[0].sees_source);

  const std::pair<const char*, const char*> bad[] = {
      {"", "empty"},           {"4*tpu", "unknown device 'tpu'"},  {"0*cpu", "1..1024"},
      {"x*cpu", "1..1024"},    {"cpu:ram", "not KEY=VALUE"},       {"cpu:color=red", "unknown key 'color'"},
      {"cpu:nic=fast", "not a rate"}, {"cpu:threads=4", "unknown key 'threads'"}, {"cpu:source=maybe", "yes or no"},
      {"cpu:ram=lots", "ram"}};
  for (const auto& [spec, says] : bad) {
    auto r = parse_lab(spec, "", "", false, 2);
    ASSERT_FALSE(r.ok()) << spec;
    EXPECT_NE(r.status().message().find(says), std::string_view::npos) << spec << ": " << r.status();
  }
  EXPECT_FALSE(parse_lab("cpu", "slow", "", false, 2).ok());
}

// The flops counted for one EXAONE-4.0-32B layer at 128 x 2048 tokens are the H100
// benchmark's 482 TFLOP (forward + 4 Hessians), so the measured rates apply to them.
TEST(TaskCost, FlopsAreTheBenchmarksCount) {
  test::TempDir d;
  test::write_exaone32b_headers(d.path(), 2);
  auto m = open_model(d.path());
  ASSERT_TRUE(m.ok()) << m.status();
  const CalibrationShape data{128, 2048};
  const double f = layer_forward_flops(m->desc, 0, data) + layer_hessian_flops(m->desc.config, data);
  EXPECT_NEAR(f / 1e12, 482.0, 1.0);
  EXPECT_NEAR(layer_hessian_flops(m->desc.config, data) / 1e12, 217.3, 0.5);
}

class Simulate : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_exaone32b_headers(dir_.path(), 4);
    auto m = open_model(dir_.path());
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = std::move(m->desc);
  }
  absl::StatusOr<SimReport> run(const std::string& yaml_tail, const std::string& workers,
                                CalibrationShape data = {128, 2048}, bool copy = false) {
    auto spec = parse_job_yaml("name: sim\nmodel: " + dir_.path() + "\noutput: /tmp/never\n" + yaml_tail, "job.yaml");
    if (!spec.ok()) return spec.status();
    spec_ = *spec;
    auto settings = job_settings(spec_);
    if (!settings.ok()) return settings.status();
    settings_ = *settings;
    auto lab = parse_lab(workers, "", "", false, 2);
    if (!lab.ok()) return lab.status();
    lab->copy_import = copy;
    return simulate(model_, spec_, settings_, data, *lab);
  }
  uint64_t layer_bytes() const {
    uint64_t b = 0;
    for (const auto& s : model_.shards)
      if (s.kind == ShardKind::kLayer) b += s.bytes;
    return b;
  }
  test::TempDir dir_;
  ModelDescription model_;
  JobSpec spec_;
  JobSettings settings_;
};

constexpr char kGptq[] = "quantize: {format: nf4, method: gptq}\ncalibrate: {ids: /nowhere, samples: 128, seq_len: 2048}\n";
constexpr char kGptqPipelined[] =
    "quantize: {format: nf4, method: gptq}\ncalibrate: {ids: /nowhere, samples: 128, seq_len: 2048, mode: pipelined}\n";

TEST_F(Simulate, RtnFetchesEachLayerOnceAndReturnsItsResult) {
  auto r = run("quantize: {format: nf4}\n", "2*gtx1080ti");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->tasks, 4);
  EXPECT_EQ(r->coordinator_bytes_out, layer_bytes());  // every layer crosses the link once
  // NF4 with double quant: about 0.28 of bf16, plus the small side tensors.
  EXPECT_GT(r->coordinator_bytes_in, layer_bytes() / 4);
  EXPECT_LT(r->coordinator_bytes_in, layer_bytes() / 3);
  // No copy of the model on the coordinator: the results, then the output beside them.
  EXPECT_GE(r->coordinator_disk_peak, r->coordinator_bytes_in + r->output_bytes);
  EXPECT_LT(r->coordinator_disk_peak, r->coordinator_bytes_in + r->output_bytes + (1 << 20));
  int tasks = 0;
  for (const auto& w : r->workers) tasks += w.tasks;
  EXPECT_EQ(tasks, 4);
  // The link is the bottleneck: 4 x 967 MB at 110 MB/s is 35 s of transfer at least.
  EXPECT_GT(r->wall_s, 35.0);
  // The output is written as results land: after the last task only its layer is left
  // (reading and writing all of it would take 2 x output / 500 MB/s).
  EXPECT_GT(r->assembly_s, 0.0);
  EXPECT_LT(r->assembly_s, 0.5 * 2 * static_cast<double>(r->output_bytes) / 500e6);

  auto copied = run("quantize: {format: nf4}\n", "2*gtx1080ti", {}, /*copy=*/true);
  ASSERT_TRUE(copied.ok());
  EXPECT_GE(copied->coordinator_disk_peak, r->coordinator_disk_peak + copied->model_bytes);
  EXPECT_GT(copied->import_s, r->import_s);

  auto direct = run("quantize: {format: nf4}\n", "2*gtx1080ti:source=yes");
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(direct->coordinator_bytes_out, 0u);  // read at the source, not fetched
  EXPECT_LT(direct->wall_s, r->wall_s);
}

TEST_F(Simulate, SequentialCalibrationStaysOnTheStagesWorker) {
  auto r = run(kGptq, "4*gtx1080ti");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->tasks, 4);
  int busy = 0;
  for (const auto& w : r->workers) busy += w.tasks > 0;
  EXPECT_EQ(busy, 1);  // one stage: its worker has the chain of activations
  // Each boundary but the last goes up once (fp32: 128 x 2048 x 5120 x 4 B) and is read
  // from the worker's own cache, never fetched back.
  const uint64_t boundary = 128ull * 2048 * 5120 * 4;
  EXPECT_GE(r->coordinator_bytes_in, 3 * boundary);
  EXPECT_LT(r->coordinator_bytes_out, layer_bytes() + boundary);
  for (const auto& w : r->workers)
    if (w.tasks > 0) {
      EXPECT_GT(w.vram_peak, 0u);
      EXPECT_LE(w.vram_peak, 11ull << 30);
      EXPECT_GT(w.ram_peak, 16ull << 30);  // the task estimates held at 128 x 2048
    }
}

TEST_F(Simulate, PipelinedSpreadsLayersAndFinishesSooner) {
  auto seq = run(kGptq, "4*gtx1080ti");
  auto pipe = run(kGptqPipelined, "4*gtx1080ti");
  ASSERT_TRUE(seq.ok() && pipe.ok());
  int busy = 0;
  for (const auto& w : pipe->workers) busy += w.tasks > 0;
  EXPECT_GE(busy, 2);
  EXPECT_EQ(pipe->tasks, 4 + 3);  // 4 layers + the forward chain (the last layer's output is not needed)
  EXPECT_LT(pipe->wall_s, seq->wall_s);
  // The activations of one layer are deleted once every reader is done: the disk never
  // holds them all.
  const uint64_t boundary = 128ull * 2048 * 5120 * 4;
  EXPECT_LT(pipe->coordinator_disk_peak, pipe->output_bytes * 2 + 3 * boundary);
}

// calibrate.activations: bfloat16 halves every boundary that crosses the coordinator's
// link (the plan's activations dtype is the one rule both read).
TEST_F(Simulate, BfloatActivationsHalveTheBoundariesOnTheLink) {
  auto f32 = run(kGptqPipelined, "4*gtx1080ti");
  auto bf16 = run("quantize: {format: nf4, method: gptq}\ncalibrate: {ids: /nowhere, samples: 128, seq_len: 2048, "
                  "mode: pipelined, activations: bfloat16}\n",
                  "4*gtx1080ti");
  ASSERT_TRUE(f32.ok() && bf16.ok()) << bf16.status();
  const uint64_t boundary = 128ull * 2048 * 5120 * 4;
  const uint64_t results = f32->coordinator_bytes_in - 3 * boundary;  // 3 forward tasks return a boundary
  EXPECT_EQ(bf16->coordinator_bytes_in, results + 3 * boundary / 2);
  EXPECT_LT(bf16->wall_s, f32->wall_s);
}

// calibrate.checkpoint_every: a sequential plan keeps every boundary but each K-th and
// the stages' last on the worker; the simulated job uploads only those and finishes sooner
// over 1 GbE.
TEST_F(Simulate, CheckpointEveryUploadsOnlyTheCheckpointsAndStageEnds) {
  auto plan_of = [&](const std::string& calibrate) {
    auto spec = parse_job_yaml("name: p\nmodel: /m\noutput: /o\nquantize: {method: gptq}\ncalibrate: {ids: /x, " +
                                   calibrate + "}\n",
                               "job.yaml");
    EXPECT_TRUE(spec.ok()) << spec.status();
    std::map<std::string, std::pair<bool, bool>> out;  // layer task -> (returns, keeps)
    const shardpress::v1::JobPlan plan = plan_job(model_, *job_settings(*spec), {128, 2048});
    for (const auto& t : plan.tasks())
      out[t.name()] = {t.returns_activations(), t.keeps_activations()};
    return out;
  };
  using P = std::map<std::string, std::pair<bool, bool>>;
  EXPECT_EQ(plan_of("samples: 128"), (P{{"layer.0", {true, false}}, {"layer.1", {true, false}},
                                        {"layer.2", {true, false}}, {"layer.3", {false, false}}}));
  EXPECT_EQ(plan_of("checkpoint_every: 2"), (P{{"layer.0", {true, true}}, {"layer.1", {true, false}},
                                               {"layer.2", {true, true}}, {"layer.3", {false, false}}}));
  // Two layers per stage (a 32B layer's task needs 29.4 GiB at 128 x 2048, its weights
  // 0.93 GiB): layer.1 ends one. The default 10 GiB fits no layer: no stage ends then.
  EXPECT_EQ(plan_of("checkpoint_every: 8, stage_memory: 32256MiB"),
            (P{{"layer.0", {true, true}}, {"layer.1", {true, false}}, {"layer.2", {true, true}},
               {"layer.3", {false, false}}}));

  auto every1 = run(kGptq, "4*gtx1080ti");
  auto every4 = run("quantize: {format: nf4, method: gptq}\ncalibrate: {ids: /nowhere, samples: 128, seq_len: 2048, "
                    "checkpoint_every: 4}\n",
                    "4*gtx1080ti");
  ASSERT_TRUE(every1.ok() && every4.ok()) << every4.status();
  const uint64_t boundary = 128ull * 2048 * 5120 * 4;
  EXPECT_EQ(every1->coordinator_bytes_in - every4->coordinator_bytes_in, 3 * boundary);  // none of the 3 goes up
  EXPECT_LT(every4->wall_s, every1->wall_s);
  EXPECT_LT(every4->coordinator_disk_peak, every1->coordinator_disk_peak);
}

TEST_F(Simulate, MoreWorkersNeverSlowAJobDownAndTheSameRunIsTheSame) {
  double last = 1e300;
  for (const char* lab : {"1*gtx1080ti", "2*gtx1080ti", "4*gtx1080ti"}) {
    auto r = run(kGptqPipelined, lab);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_LE(r->wall_s, last * 1.0001) << lab;
    last = r->wall_s;
  }
  auto a = run(kGptqPipelined, "3*gtx1080ti"), b = run(kGptqPipelined, "3*gtx1080ti");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->wall_s, b->wall_s);
  EXPECT_EQ(a->coordinator_bytes_out, b->coordinator_bytes_out);
}

TEST_F(Simulate, ATaskNoWorkerCanHoldIsAnErrorNamingIt) {
  auto r = run(kGptq, "2*gtx1080ti:ram=4GiB");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("layer.0 needs"), std::string_view::npos) << r.status();
  EXPECT_NE(r.status().message().find("4.00 GiB"), std::string_view::npos) << r.status();
}

TEST_F(Simulate, AForwardThatFitsNoDeviceBudgetRunsOnTheHostAndSaysSo) {
  auto small = run(kGptq, "1*gtx1080ti:vram=1GiB");
  auto full = run(kGptq, "1*gtx1080ti");
  ASSERT_TRUE(small.ok() && full.ok());
  ASSERT_FALSE(small->notes.empty());
  EXPECT_NE(small->notes[0].find("runs on the host CPU"), std::string::npos) << small->notes[0];
  EXPECT_GT(small->wall_s, full->wall_s * 2);
}

}  // namespace
}  // namespace sp::sim
