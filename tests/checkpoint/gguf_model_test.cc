// GGUF files read back (checkpoint/gguf_model, gguf_verify): the F32 export decodes to the
// original tensors exactly (names, shapes, Llama's Q/K rows put back), verify finds every
// block of a round-to-nearest file — ours or llama-quantize's — equal to round-to-nearest
// of the original, and reports damage (NaN scales, a missing tensor, an importance-matrix
// file under --exact) as problems rather than crashing.
#include <cstring>
#include <filesystem>

#include "checkpoint/gguf_export.h"
#include "checkpoint/gguf_model.h"
#include "checkpoint/gguf_verify.h"
#include "common/file_util.h"
#include "common/float_convert.h"
#include "formats/model.h"
#include "gtest/gtest.h"
#include "ops/ggml_quants.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

namespace fs = std::filesystem;

GgufExportOptions type(std::string_view name) {
  GgufExportOptions o;
  o.type = *gguf_ftype_from_name(name);
  return o;
}

std::string stories() { return test::fixture("stories260k/hf-f32"); }

TEST(GgufModel, F32ExportDecodesToTheOriginalExactly) {
  test::TempDir d;
  ASSERT_TRUE(export_gguf(stories(), d / "f32.gguf", type("F32")).ok());
  EXPECT_TRUE(is_gguf_file(d / "f32.gguf"));
  EXPECT_FALSE(is_gguf_file(stories()));
  auto g = GgufModel::open(d / "f32.gguf");
  ASSERT_TRUE(g.ok()) << g.status();
  auto original = open_model(stories());
  ASSERT_TRUE(original.ok());
  const ModelConfig& a = (*g)->desc().config;
  const ModelConfig& b = original->desc.config;
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.num_heads, b.num_heads);
  EXPECT_EQ(a.num_kv_heads, b.num_kv_heads);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_FLOAT_EQ(static_cast<float>(a.rms_norm_eps), static_cast<float>(b.rms_norm_eps));
  ASSERT_EQ((*g)->desc().tensors.size(), original->desc.tensors.size());
  for (const ModelTensor& t : original->desc.tensors) {
    const TensorRef* ref = original->files.find(t.name);
    EXPECT_EQ((*g)->decode(t.name), to_float32(ref->view().bytes, t.stored.dtype)) << t.name;
  }
  EXPECT_EQ((*g)->file_type_name(), "F32");
}

TEST(GgufVerify, RoundToNearestFilesMatchBlockForBlock) {
  test::TempDir d;
  ASSERT_TRUE(export_gguf(stories(), d / "q.gguf", type("Q4_K_M")).ok());
  VerifyOptions o;
  o.against = stories();
  o.exact = true;
  auto r = verify_gguf(d / "q.gguf", o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->ok()) << r->problems[0];
  EXPECT_EQ(r->gguf_type, "Q4_K_M");
  int compared = 0;
  for (const auto& t : r->tensors) {
    ASSERT_TRUE(t.rel_rmse.has_value()) << t.name;
    if (t.codes_differ) {
      EXPECT_EQ(*t.codes_differ, 0u) << t.name;
      EXPECT_GT(t.codes_total, 0u);
      ++compared;
    }
    if (t.kind == "F32") {
      EXPECT_EQ(*t.max_abs_error, 0.0) << t.name;
    }
  }
  EXPECT_EQ(compared, 31);  // every Q5_0 / Q8_0 tensor; the F16 fallbacks are not blocks
}

TEST(GgufVerify, LlamaQuantizeOutputIsRoundToNearestToo) {
  if (test::llama_tool("llama-quantize").empty()) GTEST_SKIP() << "no llama-quantize in ../shared/tools";
  test::TempDir d;
  ASSERT_TRUE(export_gguf(stories(), d / "f32.gguf", type("F32")).ok());
  auto q = test::run_program(test::llama_tool("llama-quantize"), {d / "f32.gguf", d / "lq.gguf", "Q4_K_M"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  VerifyOptions o;
  o.against = stories();
  o.exact = true;
  auto r = verify_gguf(d / "lq.gguf", o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->ok()) << r->problems[0];
}

TEST(GgufVerify, DamageIsReportedNotFatal) {
  test::TempDir d;
  const std::string path = d / "q8.gguf";
  ASSERT_TRUE(export_gguf(stories(), path, type("Q8_0")).ok());
  {  // the first block's fp16 scale of blk.0.attn_q becomes NaN
    auto g = GgufModel::open(path);
    ASSERT_TRUE(g.ok());
    const uint64_t off = (*g)->entry("model.layers.0.self_attn.q_proj.weight").offset;
    auto bytes = read_file(path);
    ASSERT_TRUE(bytes.ok());
    (*bytes)[off] = 0x00, (*bytes)[off + 1] = 0x7E;
    fs::remove(path);
    ASSERT_TRUE(write_file_atomic(path, *bytes).ok());
  }
  auto r = verify_gguf(path, VerifyOptions{});
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE(r->ok());
  EXPECT_NE(r->problems[0].find("model.layers.0.self_attn.q_proj.weight: 32 values decode to NaN or infinity"),
            std::string::npos)
      << r->problems[0];
  // Cut short: the container no longer parses; a problem naming the file.
  auto bytes = read_file(path);
  ASSERT_TRUE(bytes.ok());
  ASSERT_TRUE(write_file_atomic(d / "cut.gguf", std::string_view(*bytes).substr(0, bytes->size() / 2)).ok());
  auto cut = verify_gguf(d / "cut.gguf", VerifyOptions{});
  ASSERT_TRUE(cut.ok());
  ASSERT_FALSE(cut->ok());
  EXPECT_NE(cut->problems[0].find("cut.gguf: not a GGUF v3 file (tensor blk.2.attn_v.weight outside the file)"),
            std::string::npos)
      << cut->problems[0];
  EXPECT_TRUE(absl::IsNotFound(verify_gguf(d / "missing.gguf", VerifyOptions{}).status()));
}

TEST(GgufVerify, AnImportanceMatrixFileCannotBeExact) {
  test::TempDir d;
  Imatrix m;
  m.entries.push_back({"blk.0.attn_q.weight", 1, std::vector<float>(64, 1.0f)});
  m.entries[0].values[3] = 50.0f;
  m.last_call = 1;
  GgufExportOptions o = type("Q4_0");
  o.imatrix = &m;
  o.imatrix_file = "hand.dat";
  ASSERT_TRUE(export_gguf(stories(), d / "w.gguf", o).ok());
  VerifyOptions v;
  v.against = stories();
  auto plain = verify_gguf(d / "w.gguf", v);
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->ok());
  EXPECT_TRUE(plain->reference.empty());
  v.exact = true;
  auto exact = verify_gguf(d / "w.gguf", v);
  ASSERT_TRUE(exact.ok());
  ASSERT_FALSE(exact->ok());
  EXPECT_NE(exact->problems[0].find("importance matrix hand.dat"), std::string::npos) << exact->problems[0];
}

}  // namespace
}  // namespace sp
