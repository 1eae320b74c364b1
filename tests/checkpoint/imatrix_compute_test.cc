// Importance matrices computed by shardpress (checkpoint/imatrix_compute): the file is one
// llama-quantize reads and uses exactly as we do (same bytes), and its values agree with
// what llama.cpp's own llama-imatrix measures on the same text.
#include <cmath>
#include <cstring>
#include <filesystem>

#include "checkpoint/gguf_export.h"
#include "checkpoint/imatrix_compute.h"
#include "formats/gguf_reader.h"
#include "formats/model_config.h"
#include "formats/synthetic_model.h"
#include "gtest/gtest.h"
#include "ops/ggml_quants.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

std::string stories() { return test::fixture("stories260k/hf-f32"); }

absl::StatusOr<Imatrix> ours(const std::string& model, int64_t samples) {
  SP_ASSIGN_OR_RETURN(ModelConfig c, load_model_config(model));
  SP_ASSIGN_OR_RETURN(TokenBatch ids, read_token_ids(test::fixture("stories260k/text/calib.ids.txt"), c.vocab_size, samples, 0));
  return compute_imatrix(model, ids, "calib.ids.txt");
}

GgufExportOptions type(std::string_view name) {
  GgufExportOptions o;
  o.type = *gguf_ftype_from_name(name);
  return o;
}

// On a synthetic Llama with the stories vocabulary and rows llama-quantize takes in every
// type (hidden 256, FFN 512).
TEST(ImatrixCompute, LlamaQuantizeUsesOurFileAsWeDo) {
  if (test::llama_tool("llama-quantize").empty()) GTEST_SKIP() << "no llama-quantize in ../shared/tools";
  test::TempDir d;
  SynthOptions so;
  so.params = 5'000'000;
  so.dtype = DType::kF32;
  so.hidden = 256;
  so.intermediate = 512;
  so.layers = 2;
  const std::string model = d / "syn";
  ASSERT_TRUE(write_synthetic_model(model, so).ok());
  std::filesystem::copy_file(test::fixture("stories260k/hf-f32/tokenizer.model"), model + "/tokenizer.model");
  auto m = ours(model, 16);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->entries.size(), 14u);  // 2 layers x 7 projections
  EXPECT_EQ(m->last_call, 16);
  EXPECT_EQ(m->find("blk.0.attn_q.weight")->values, m->find("blk.0.attn_v.weight")->values);  // one input
  EXPECT_EQ(m->find("blk.1.ffn_down.weight")->values.size(), 512u);
  ASSERT_TRUE(write_imatrix(d / "ours.dat", *m).ok());
  ASSERT_TRUE(export_gguf(model, d / "f32.gguf", type("F32")).ok());
  for (const auto& f : gguf_ftypes()) {
    if (f.mix || ggml_traits(f.base).block == 1 || f.base == GgmlType::kQ8_0) continue;
    GgufExportOptions o = type(f.name);
    o.imatrix = &*m;
    const std::string t(f.name), a = d / (t + ".gguf"), b = d / (t + "-lq.gguf");
    ASSERT_TRUE(export_gguf(model, a, o).ok());
    auto q = test::run_program(test::llama_tool("llama-quantize"), {"--pure", "--imatrix", d / "ours.dat", d / "f32.gguf", b, t});
    ASSERT_EQ(q.exit_code, 0) << q.err;
    auto x = read_gguf(a), y = read_gguf(b);
    ASSERT_TRUE(x.ok() && y.ok());
    for (const auto& e : x->tensors) {
      const GgufTensorEntry* g = y->find(e.name);
      ASSERT_NE(g, nullptr);
      ASSERT_EQ(g->type, e.type) << t << " " << e.name;
      int64_t n = 1;
      for (int64_t v : e.ne) n *= v;
      const uint64_t bytes = ggml_nbytes(static_cast<GgmlType>(e.type), n);
      EXPECT_EQ(0, std::memcmp(x->file.bytes().data() + e.offset, y->file.bytes().data() + g->offset, bytes)) << t << " " << e.name;
    }
  }
}

TEST(ImatrixCompute, AgreesWithLlamaImatrix) {
  if (test::llama_tool("llama-imatrix").empty()) GTEST_SKIP() << "no llama-imatrix in ../shared/tools";
  test::TempDir d;
  ASSERT_TRUE(export_gguf(stories(), d / "f32.gguf", type("F32")).ok());
  auto im = test::run_program(test::llama_tool("llama-imatrix"),
                              {"-m", d / "f32.gguf", "-f", test::fixture("stories260k/text/calib.txt"), "-o",
                               d / "theirs.dat", "-c", "128", "--chunks", "64", "-t", "2"});
  ASSERT_EQ(im.exit_code, 0) << im.err;
  auto theirs = read_imatrix(d / "theirs.dat");
  ASSERT_TRUE(theirs.ok());
  auto m = ours(stories(), 128);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(theirs->entries.size(), m->entries.size());
  double worst = 1, mean = 0;
  for (const auto& e : m->entries) {
    const ImatrixEntry* t = theirs->find(e.name);
    ASSERT_NE(t, nullptr) << e.name;
    ASSERT_EQ(t->values.size(), e.values.size());
    double dot = 0, a2 = 0, b2 = 0;  // cosine similarity of the per-column mean squares
    for (size_t j = 0; j < e.values.size(); ++j) {
      const double a = e.values[j] / e.ncall, b = t->values[j] / t->ncall;
      dot += a * b, a2 += a * a, b2 += b * b;
    }
    worst = std::min(worst, dot / std::sqrt(a2 * b2));
    mean += dot / std::sqrt(a2 * b2) / static_cast<double>(m->entries.size());
  }
  // Not the same token windows (their 128-token chunks of the text, our lines from each
  // story's start), so not the same numbers: the same statistic, measured (mean 0.99, worst
  // 0.94: an attention output, the input most sensitive to where a window starts).
  std::printf("cosine similarity with llama-imatrix: mean %.5f, worst %.5f\n", mean, worst);
  EXPECT_GT(mean, 0.98);
  EXPECT_GT(worst, 0.9);
}

}  // namespace
}  // namespace sp
