// End to end, format gguf: a job on a real coordinator and two workers converts every shard
// (layers, embeddings, norm) as tasks and assembles one GGUF file; the coordinator is
// killed with SIGKILL mid-tasks and while assembling, and the file that finally appears
// holds exactly the tensors `compress --format gguf` writes, loads in llama.cpp, and
// nothing half-written is ever visible.
#include <signal.h>

#include <filesystem>

#include "checkpoint/gguf_export.h"
#include "checkpoint/imatrix_compute.h"
#include "formats/gguf_reader.h"
#include "formats/token_ids.h"
#include "ops/linalg.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "ops/ggml_quants.h"
#include "tests/e2e/cluster.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

std::span<const uint8_t> tensor_bytes(const GgufFile& g, const GgufTensorEntry& t) {
  int64_t n = 1;
  for (int64_t d : t.ne) n *= d;
  return g.file.bytes().subspan(t.offset, ggml_nbytes(static_cast<GgmlType>(t.type), n));
}

// Every tensor of `out` has the type and bytes of the same tensor in `ref`.
void expect_same_tensors(const std::string& out, const std::string& ref) {
  auto a = read_gguf(out), b = read_gguf(ref);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status();
  ASSERT_EQ(a->tensors.size(), b->tensors.size());
  for (const auto& t : a->tensors) {
    const GgufTensorEntry* u = b->find(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    EXPECT_EQ(t.type, u->type) << t.name;
    const auto x = tensor_bytes(*a, t), y = tensor_bytes(*b, *u);
    EXPECT_TRUE(std::equal(x.begin(), x.end(), y.begin(), y.end())) << t.name;
  }
}

TEST_F(Cluster, GgufJobSurvivesCoordinatorKillsAndEqualsCompress) {
  start_coordinator("assemble=15");
  start_worker("a", "task=300");
  start_worker("b", "task=300", /*fetch=*/true);
  const std::string out = dir_ / "out/g.gguf";
  test::write_text(dir_ / "g.yaml", "name: g\nmodel: " + (dir_ / "models/stories") + "\noutput: " + out +
                                        "\nquantize: {format: gguf, type: Q4_K_M}\n");
  ASSERT_EQ(cli({"submit", dir_ / "g.yaml"}).exit_code, 0);
  wait_for("g", [](const json& s) { return done(s) >= 2; });
  coordinator_->kill(SIGKILL);
  coordinator_->wait();
  start_coordinator("assemble=15");
  wait_for("g", [](const json& s) {
    const std::string phase = s["phase"];
    return phase.rfind("assembling ", 0) == 0 && std::atoi(phase.c_str() + 11) >= 2;
  });
  coordinator_->kill(SIGKILL);
  coordinator_->wait();
  EXPECT_FALSE(fs::exists(out)) << "a half-written GGUF became visible";
  start_coordinator();
  const json s = wait_for("g", succeeded);
  EXPECT_EQ(done(s), 7) << s.dump();  // 5 layers, the embeddings, the final norm (tied: no lm_head)
  for (const auto& e : fs::directory_iterator(dir_ / "out"))
    EXPECT_NE(e.path().filename().string()[0], '.') << "left behind: " << e.path();

  // The tensors `compress` writes, byte for byte.
  const std::string ref = dir_ / "ref.gguf";
  GgufExportOptions o;
  o.type = *gguf_ftype_from_name("Q4_K_M");
  ASSERT_TRUE(export_gguf(dir_ / "models/stories", ref, o).ok());
  expect_same_tensors(out, ref);
  auto a = read_gguf(out);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->strings.at("shardpress.job"), "job-0001");
  auto v = test::run_cli({"verify", out, "--against", dir_ / "models/stories", "--exact"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  auto ev = cli({"events", "g"});
  EXPECT_NE(ev.out.find("GGUF fallback: blk.0.attn_q.weight: 64 columns, not whole Q4_K blocks of 256: Q5_0"),
            std::string::npos)
      << ev.out;
  if (!test::llama_tool("llama-cli").empty()) {
    auto gen = test::run_program(test::llama_tool("llama-cli"),
                                 {"-m", out, "-p", "Once upon a time", "-n", "20", "--temp", "0", "-no-cnv"});
    EXPECT_EQ(gen.exit_code, 0) << gen.err;
    EXPECT_NE(gen.out.find("Once upon a time"), std::string::npos) << gen.out;
  }
}

// GPTQ on the grids as a job: calibration tasks on two workers (sequential layers), the
// coordinator killed with layers done; the file equals what one process writes.
TEST_F(Cluster, GptqGgufJobEqualsOneProcess) {
  fs::copy_file(test::fixture("stories260k/text/calib.ids.txt"), dir_ / "models/calib.ids.txt");
  start_coordinator();
  start_worker("a", "task=300");
  start_worker("b", "task=300", /*fetch=*/true);
  const std::string out = dir_ / "out/q.gguf";
  test::write_text(dir_ / "q.yaml", "name: q\nmodel: " + (dir_ / "models/stories") + "\noutput: " + out +
                                        "\nquantize: {format: gguf, type: Q4_0, method: gptq}\ncalibrate: {ids: " +
                                        (dir_ / "models/calib.ids.txt") + ", samples: 32}\n");
  ASSERT_EQ(cli({"submit", dir_ / "q.yaml"}).exit_code, 0);
  wait_for("q", [](const json& s) { return done(s) >= 3; }, 60'000);
  coordinator_->kill(SIGKILL);
  coordinator_->wait();
  start_coordinator();
  wait_for("q", succeeded, 60'000);

  set_blas_threads(1);
  const std::string ref = dir_ / "ref.gguf";
  GgufExportOptions o;
  o.type = *gguf_ftype_from_name("Q4_0");
  const TokenBatch ids = *read_token_ids(dir_ / "models/calib.ids.txt", 512, 32, 0);
  o.gptq_ids = &ids;
  o.gptq.act_order = true;  // the spec's default with GPTQ
  ASSERT_TRUE(export_gguf(dir_ / "models/stories", ref, o).ok());
  expect_same_tensors(out, ref);
  GgufExportOptions plain;
  plain.type = o.type;
  ASSERT_TRUE(export_gguf(dir_ / "models/stories", dir_ / "rtn.gguf", plain).ok());
  auto g = read_gguf(out), r = read_gguf(dir_ / "rtn.gguf");
  ASSERT_TRUE(g.ok() && r.ok());
  const auto x = tensor_bytes(*g, *g->find("blk.2.attn_q.weight")), y = tensor_bytes(*r, *r->find("blk.2.attn_q.weight"));
  EXPECT_FALSE(std::equal(x.begin(), x.end(), y.begin(), y.end())) << "GPTQ wrote round-to-nearest";
}

// Round to nearest weighted by importance values, as jobs: one reads an imatrix file, one
// computes the values on calibration text in its layer tasks (on two workers, the
// coordinator killed with layers done). Both write the tensors `compress --format gguf
// --imatrix` writes with the imatrix of that text, and record it as llama-quantize does.
TEST_F(Cluster, ImportanceWeightedGgufJobsEqualCompress) {
  fs::copy_file(test::fixture("stories260k/text/calib.ids.txt"), dir_ / "models/calib.ids.txt");
  const TokenBatch ids = *read_token_ids(dir_ / "models/calib.ids.txt", 512, 16, 0);
  set_blas_threads(1);  // as the workers and `compress` compute
  auto m = compute_imatrix(dir_ / "models/stories", ids, "calib");
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_TRUE(write_imatrix(dir_ / "models/stories.imatrix", *m).ok());
  start_coordinator();
  start_worker("a", "task=200");
  start_worker("b", "task=200", /*fetch=*/true);
  const std::string head = "model: " + (dir_ / "models/stories") + "\nquantize: {format: gguf, type: Q4_K_M";
  test::write_text(dir_ / "f.yaml", "name: f\noutput: " + (dir_ / "out/f.gguf") + "\n" + head + ", imatrix: " +
                                        (dir_ / "models/stories.imatrix") + "}\n");
  test::write_text(dir_ / "c.yaml", "name: c\noutput: " + (dir_ / "out/c.gguf") + "\n" + head +
                                        "}\ncalibrate: {ids: " + (dir_ / "models/calib.ids.txt") + ", samples: 16}\n");
  ASSERT_EQ(cli({"submit", dir_ / "f.yaml"}).exit_code, 0);
  auto sub = cli({"submit", dir_ / "c.yaml"});
  ASSERT_EQ(sub.exit_code, 0) << sub.err;
  wait_for("c", [](const json& s) { return done(s) >= 2; }, 60'000);
  coordinator_->kill(SIGKILL);
  coordinator_->wait();
  start_coordinator();
  wait_for("f", succeeded, 60'000);
  wait_for("c", succeeded, 60'000);
  auto ev = cli({"events", "c"});
  EXPECT_NE(ev.out.find("GGUF Q4_K_M (importance-weighted)"), std::string::npos) << ev.out;

  const std::string ref = dir_ / "ref.gguf";
  GgufExportOptions o;
  o.type = *gguf_ftype_from_name("Q4_K_M");
  o.imatrix = &*m;
  ASSERT_TRUE(export_gguf(dir_ / "models/stories", ref, o).ok());
  {
    SCOPED_TRACE("quantize.imatrix");
    expect_same_tensors(dir_ / "out/f.gguf", ref);
  }
  {
    SCOPED_TRACE("calibrate.ids");
    expect_same_tensors(dir_ / "out/c.gguf", ref);
  }
  GgufExportOptions plain;
  plain.type = o.type;
  ASSERT_TRUE(export_gguf(dir_ / "models/stories", dir_ / "rtn.gguf", plain).ok());
  auto g = read_gguf(dir_ / "out/c.gguf"), r = read_gguf(dir_ / "rtn.gguf");
  ASSERT_TRUE(g.ok() && r.ok());
  const auto x = tensor_bytes(*g, *g->find("blk.1.ffn_up.weight")), y = tensor_bytes(*r, *r->find("blk.1.ffn_up.weight"));
  EXPECT_FALSE(std::equal(x.begin(), x.end(), y.begin(), y.end())) << "the importance values were not used";
  EXPECT_EQ(g->strings.at("quantize.imatrix.file"), dir_ / "models/calib.ids.txt");
  auto f = read_gguf(dir_ / "out/f.gguf");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->strings.at("quantize.imatrix.file"), dir_ / "models/stories.imatrix");
  EXPECT_EQ(f->strings.at("quantize.imatrix.dataset"), "calib");
}

// A job whose importance matrix does not fit the model is refused at submit, naming the file.
TEST_F(Cluster, GgufJobWithAForeignImatrixIsRefused) {
  Imatrix m;
  m.entries.push_back({"blk.0.attn_q.weight", 1, std::vector<float>(7, 1.0f)});
  ASSERT_TRUE(write_imatrix(dir_ / "models/bad.imatrix", m).ok());
  start_coordinator();
  test::write_text(dir_ / "b.yaml", "name: b\nmodel: " + (dir_ / "models/stories") + "\noutput: " +
                                        (dir_ / "out/b.gguf") + "\nquantize: {format: gguf, type: Q4_0, imatrix: " +
                                        (dir_ / "models/bad.imatrix") + "}\n");
  auto r = cli({"submit", dir_ / "b.yaml"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("bad.imatrix: the importance matrix has 7 values for blk.0.attn_q.weight, which has 64 columns"),
            std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace sp
