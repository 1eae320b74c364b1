// GGUF output (checkpoint/gguf_export): the file llama.cpp's own tools read — llama-gguf
// lists it, llama-cli generates the fixture's reference text from the F32 export — and,
// for every single type, tensor bytes equal to what `llama-quantize --pure` writes from our
// F32 export. Tests that need the tools skip where ../shared/tools is absent.
#include <filesystem>

#include "checkpoint/gguf_export.h"
#include "formats/gguf_reader.h"
#include "formats/synthetic_model.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "ops/ggml_quants.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

namespace fs = std::filesystem;

// The bytes of tensor `name` in `g` (its type's size).
std::span<const uint8_t> tensor_bytes(const GgufFile& g, const GgufTensorEntry& t) {
  int64_t n = 1;
  for (int64_t d : t.ne) n *= d;
  return g.file.bytes().subspan(t.offset, ggml_nbytes(static_cast<GgmlType>(t.type), n));
}

#define SKIP_WITHOUT(tool)                                                                          \
  if (test::llama_tool(tool).empty()) GTEST_SKIP() << "llama.cpp's " << tool << " is not in " \
                                                   << test::shared_dir() << "/tools/llama.cpp/bin"

TEST(GgufExport, StoriesF32IsReadByLlamaCppAndGeneratesTheReferenceText) {
  SKIP_WITHOUT("llama-cli");
  test::TempDir d;
  const std::string out = d / "stories-f32.gguf";
  auto s = export_gguf(test::fixture("stories260k/hf-f32"), out, {GgmlType::kF32});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->tensors, 47);  // tied: no output.weight
  EXPECT_TRUE(s->fallbacks.empty());
  auto g = read_gguf(out);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->strings.at("general.architecture"), "llama");
  EXPECT_EQ(g->strings.at("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(g->integers.at("llama.block_count"), 5u);
  EXPECT_EQ(g->find("output.weight"), nullptr);
  ASSERT_NE(g->find("blk.4.ffn_down.weight"), nullptr);
  EXPECT_EQ(g->find("blk.4.ffn_down.weight")->ne, (std::vector<int64_t>{172, 64}));

  auto listed = test::run_program(test::llama_tool("llama-gguf"), {out, "r", "n"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("output_norm.weight"), std::string::npos) << listed.out;

  const auto ref = nlohmann::json::parse(test::read_bytes(test::fixture("stories260k/reference.json")));
  const std::string want = ref["greedy_from_bos"]["hf-f32"]["text"];
  auto gen = test::run_program(test::llama_tool("llama-cli"),
                               {"-m", out, "-p", "Once upon a time", "-n", "40", "--temp", "0", "-no-cnv"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  // 40 tokens after the prompt: a prefix of the reference's greedy continuation.
  std::string text = gen.out;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  while (!text.empty() && text.front() == ' ') text.erase(0, 1);
  ASSERT_GT(text.size(), 60u) << gen.out;
  EXPECT_EQ(want.substr(0, text.size()), text) << "llama.cpp's greedy text of our F32 export";
}

// For every single type: our bytes equal llama-quantize --pure's from our F32 export, on a
// synthetic Llama whose rows fill whole blocks (hidden 128, FFN 384), every tensor.
TEST(GgufExport, EveryTypeIsByteIdenticalToLlamaQuantize) {
  SKIP_WITHOUT("llama-quantize");
  test::TempDir d;
  SynthOptions o;
  o.params = 5'000'000;
  o.dtype = DType::kF32;
  const std::string model = d / "syn";
  ASSERT_TRUE(write_synthetic_model(model, o).ok());
  fs::copy_file(test::fixture("stories260k/hf-f32/tokenizer.model"), model + "/tokenizer.model");  // vocab 512
  ASSERT_TRUE(export_gguf(model, d / "f32.gguf", {GgmlType::kF32}).ok());
  int checked = 0;
  for (const auto& tr : ggml_types()) {
    if (tr.type == GgmlType::kF32) continue;
    const std::string ours = d / (std::string(tr.name) + ".gguf"), theirs = d / (std::string(tr.name) + "-lq.gguf");
    auto s = export_gguf(model, ours, {tr.type});
    ASSERT_TRUE(s.ok()) << tr.name << ": " << s.status();
    EXPECT_TRUE(s->fallbacks.empty()) << tr.name;
    auto q = test::run_program(test::llama_tool("llama-quantize"), {"--pure", d / "f32.gguf", theirs, std::string(tr.name)});
    ASSERT_EQ(q.exit_code, 0) << q.err;
    auto a = read_gguf(ours), b = read_gguf(theirs);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(a->tensors.size(), b->tensors.size());
    for (const auto& t : a->tensors) {
      const GgufTensorEntry* u = b->find(t.name);
      ASSERT_NE(u, nullptr) << t.name;
      EXPECT_EQ(t.type, u->type) << tr.name << " " << t.name;
      EXPECT_EQ(t.ne, u->ne) << t.name;
      const auto x = tensor_bytes(*a, t), y = tensor_bytes(*b, *u);
      EXPECT_TRUE(std::equal(x.begin(), x.end(), y.begin(), y.end())) << tr.name << " " << t.name << " differs";
      ++checked;
    }
    EXPECT_EQ(a->integers.at("general.file_type"), b->integers.at("general.file_type")) << tr.name;
  }
  EXPECT_GT(checked, 4 * 200);
}

// stories260k's ffn_down is 172 wide: no whole Q4_0 block, where llama-quantize gives up.
// Those tensors fall back to F16 (reported); llama.cpp loads the file and generates.
TEST(GgufExport, RowsThatFillNoBlockFallBackToF16AndTheFileStillRuns) {
  SKIP_WITHOUT("llama-cli");
  test::TempDir d;
  const std::string out = d / "q4.gguf";
  auto s = export_gguf(test::fixture("stories260k/hf-f32"), out, {GgmlType::kQ4_0});
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->fallbacks.size(), 5u);
  EXPECT_NE(s->fallbacks[0].find("blk.0.ffn_down.weight: 172 columns, not whole Q4_0 blocks of 32: F16"),
            std::string::npos)
      << s->fallbacks[0];
  auto g = read_gguf(out);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->find("blk.0.ffn_down.weight")->type, static_cast<uint32_t>(GgmlType::kF16));
  EXPECT_EQ(g->find("blk.0.ffn_up.weight")->type, static_cast<uint32_t>(GgmlType::kQ4_0));
  EXPECT_EQ(g->find("blk.0.attn_norm.weight")->type, static_cast<uint32_t>(GgmlType::kF32));
  auto gen = test::run_program(test::llama_tool("llama-cli"),
                               {"-m", out, "-p", "Once upon a time", "-n", "20", "--temp", "0", "-no-cnv"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  EXPECT_GT(gen.out.size(), 40u) << gen.out;
  EXPECT_TRUE(absl::IsFailedPrecondition(export_gguf(test::fixture("stories260k/hf-f32"), out, {GgmlType::kQ4_0}).status()))
      << "an existing file is never overwritten";
}

}  // namespace
}  // namespace sp
