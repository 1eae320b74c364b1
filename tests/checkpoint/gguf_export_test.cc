// GGUF output (checkpoint/gguf_export): the file llama.cpp's own tools read — llama-gguf
// lists it, llama-cli generates the fixture's reference text from the F32 export — and,
// for every single type, tensor bytes equal to what `llama-quantize --pure` writes from our
// F32 export. Tests that need the tools skip where ../shared/tools is absent.
#include <filesystem>
#include <algorithm>
#include <cstring>

#include "checkpoint/gguf_export.h"
#include "ops/rope.h"
#include "formats/token_ids.h"
#include "formats/sentencepiece_model.h"
#include "formats/model.h"
#include "checkpoint/float_model.h"
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

GgufExportOptions type(std::string_view name) {
  GgufExportOptions o;
  o.type = *gguf_ftype_from_name(name);
  return o;
}

// Every tensor of `ours` has the type and bytes of the same tensor in `theirs` (and
// llama-gguf reads `ours`); returns how many were compared.
int expect_same_tensors(const std::string& ours, const std::string& theirs, const std::string& label) {
  // llama.cpp's own reader lists our file (header, metadata, every tensor) without error.
  auto listed = test::run_program(test::llama_tool("llama-gguf"), {ours, "r", "n"});
  EXPECT_EQ(listed.exit_code, 0) << label << ": " << listed.err;
  auto a = read_gguf(ours), b = read_gguf(theirs);
  EXPECT_TRUE(a.ok() && b.ok()) << label;
  if (!a.ok() || !b.ok()) return 0;
  EXPECT_EQ(a->tensors.size(), b->tensors.size()) << label;
  int checked = 0;
  for (const auto& t : a->tensors) {
    const GgufTensorEntry* u = b->find(t.name);
    if (u == nullptr) {
      ADD_FAILURE() << label << ": " << t.name << " missing from llama-quantize's file";
      continue;
    }
    EXPECT_EQ(ggml_traits(static_cast<GgmlType>(t.type)).name, ggml_traits(static_cast<GgmlType>(u->type)).name)
        << label << " " << t.name;
    EXPECT_EQ(t.ne, u->ne) << t.name;
    if (t.type != u->type) continue;
    const auto x = tensor_bytes(*a, t), y = tensor_bytes(*b, *u);
    EXPECT_TRUE(std::equal(x.begin(), x.end(), y.begin(), y.end())) << label << " " << t.name << " differs";
    ++checked;
  }
  EXPECT_EQ(a->integers.at("general.file_type"), b->integers.at("general.file_type")) << label;
  return checked;
}

// A synthetic Llama whose rows are whole 256-blocks (hidden 256, FFN 512), with the
// stories vocabulary (512 pieces).
std::string rows_of_256(const test::TempDir& d, int layers) {
  SynthOptions o;
  o.params = 5'000'000;
  o.dtype = DType::kF32;
  o.hidden = 256;
  o.intermediate = 512;
  o.layers = layers;
  const std::string model = d / "syn";
  EXPECT_TRUE(write_synthetic_model(model, o).ok());
  fs::copy_file(test::fixture("stories260k/hf-f32/tokenizer.model"), model + "/tokenizer.model");
  return model;
}

// llama-perplexity loads `path` and scores a little text: a number comes out.
void expect_perplexity_runs(const std::string& path) {
  auto p = test::run_program(test::llama_tool("llama-perplexity"),
                             {"-m", path, "-f", test::fixture("stories260k/text/eval.txt"), "-c", "64", "-b", "64",
                              "--chunks", "2", "-t", "2"});
  EXPECT_EQ(p.exit_code, 0) << path << ": " << p.err;
  EXPECT_NE((p.out + p.err).find("Final estimate: PPL = "), std::string::npos) << path;
}

#define SKIP_WITHOUT(tool)                                                                          \
  if (test::llama_tool(tool).empty()) GTEST_SKIP() << "llama.cpp's " << tool << " is not in " \
                                                   << test::shared_dir() << "/tools/llama.cpp/bin"

TEST(GgufExport, StoriesF32IsReadByLlamaCppAndGeneratesTheReferenceText) {
  SKIP_WITHOUT("llama-cli");
  test::TempDir d;
  const std::string out = d / "stories-f32.gguf";
  auto s = export_gguf(test::fixture("stories260k/hf-f32"), out, type("F32"));
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
// synthetic Llama whose rows fill whole blocks of every type, every tensor; and
// llama-perplexity runs on every file we wrote.
TEST(GgufExport, EveryTypeIsByteIdenticalToLlamaQuantize) {
  SKIP_WITHOUT("llama-quantize");
  test::TempDir d;
  const std::string model = rows_of_256(d, 2);
  ASSERT_TRUE(export_gguf(model, d / "f32.gguf", type("F32")).ok());
  int checked = 0, types = 0;
  for (const auto& f : gguf_ftypes()) {
    if (f.mix || f.name == "F32") continue;
    const std::string ours = d / (std::string(f.name) + ".gguf"), theirs = d / (std::string(f.name) + "-lq.gguf");
    auto s = export_gguf(model, ours, type(f.name));
    ASSERT_TRUE(s.ok()) << f.name << ": " << s.status();
    EXPECT_TRUE(s->fallbacks.empty()) << f.name;
    auto q = test::run_program(test::llama_tool("llama-quantize"), {"--pure", d / "f32.gguf", theirs, std::string(f.name)});
    ASSERT_EQ(q.exit_code, 0) << q.err;
    checked += expect_same_tensors(ours, theirs, std::string(f.name));
    expect_perplexity_runs(ours);
    ++types;
  }
  EXPECT_EQ(types, 11);
  EXPECT_EQ(checked, 11 * (2 * 9 + 3));
}

// The mixes: llama-quantize's per-tensor choices (more bits for attn_v and ffn_down in the
// first, last and every third layer, Q6_K output...) and bytes, on 8 layers so that the
// rules differ between layers.
TEST(GgufExport, MixesChooseTheTypesLlamaQuantizeChooses) {
  SKIP_WITHOUT("llama-quantize");
  test::TempDir d;
  const std::string model = rows_of_256(d, 8);
  ASSERT_TRUE(export_gguf(model, d / "f32.gguf", type("F32")).ok());
  for (const auto& f : gguf_ftypes()) {
    if (!f.mix) continue;
    const std::string ours = d / (std::string(f.name) + ".gguf"), theirs = d / (std::string(f.name) + "-lq.gguf");
    auto s = export_gguf(model, ours, type(f.name));
    ASSERT_TRUE(s.ok()) << f.name << ": " << s.status();
    auto q = test::run_program(test::llama_tool("llama-quantize"), {d / "f32.gguf", theirs, std::string(f.name)});
    ASSERT_EQ(q.exit_code, 0) << q.err;
    EXPECT_EQ(expect_same_tensors(ours, theirs, std::string(f.name)), 8 * 9 + 3);
    expect_perplexity_runs(ours);
  }
  // The rules themselves, as the table in README states them.
  auto m = read_gguf(d / "Q4_K_M.gguf");
  ASSERT_TRUE(m.ok());
  auto type_of = [&](const std::string& n) { return ggml_traits(static_cast<GgmlType>(m->find(n)->type)).name; };
  EXPECT_EQ(type_of("blk.0.attn_v.weight"), "Q6_K");
  EXPECT_EQ(type_of("blk.1.attn_v.weight"), "Q4_K");
  EXPECT_EQ(type_of("blk.3.ffn_down.weight"), "Q6_K");
  EXPECT_EQ(type_of("blk.4.ffn_down.weight"), "Q4_K");
  EXPECT_EQ(type_of("blk.4.attn_q.weight"), "Q4_K");
}

// A real model whose rows fit few blocks: stories260k under Q4_K_M. llama-quantize writes
// it with its fallbacks (Q4_K -> Q5_0 for 64-wide rows, Q6_K -> Q8_0, F16 for the 172-wide
// ffn_down); ours equals it tensor for tensor.
TEST(GgufExport, StoriesQ4KMEqualsLlamaQuantizeWithItsFallbacks) {
  SKIP_WITHOUT("llama-quantize");
  test::TempDir d;
  const std::string model = test::fixture("stories260k/hf-f32");
  ASSERT_TRUE(export_gguf(model, d / "f32.gguf", type("F32")).ok());
  auto s = export_gguf(model, d / "ours.gguf", type("Q4_K_M"));
  ASSERT_TRUE(s.ok()) << s.status();
  auto q = test::run_program(test::llama_tool("llama-quantize"), {d / "f32.gguf", d / "theirs.gguf", "Q4_K_M"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_EQ(expect_same_tensors(d / "ours.gguf", d / "theirs.gguf", "stories Q4_K_M"), 47);
  EXPECT_FALSE(s->fallbacks.empty());
}

// With llama.cpp's own importance matrix (llama-imatrix on the calibration text), our bytes
// equal llama-quantize --imatrix's for every type that uses one.
TEST(GgufExport, WithAnImportanceMatrixEveryTypeEqualsLlamaQuantize) {
  SKIP_WITHOUT("llama-imatrix");
  test::TempDir d;
  const std::string model = rows_of_256(d, 2);
  ASSERT_TRUE(export_gguf(model, d / "f32.gguf", type("F32")).ok());
  const std::string dat = d / "imatrix.dat";
  auto im = test::run_program(test::llama_tool("llama-imatrix"),
                              {"-m", d / "f32.gguf", "-f", test::fixture("stories260k/text/calib.txt"), "-o", dat, "-c",
                               "128", "--chunks", "8", "-t", "2"});
  ASSERT_EQ(im.exit_code, 0) << im.err;
  auto imatrix = read_imatrix(dat);
  ASSERT_TRUE(imatrix.ok()) << imatrix.status();
  EXPECT_EQ(imatrix->entries.size(), 14u);  // 2 layers x 7 matrices
  EXPECT_EQ(imatrix->last_call, 8);
  int checked = 0;
  for (const auto& f : gguf_ftypes()) {
    if (f.mix || ggml_traits(f.base).block == 1 || f.base == GgmlType::kQ8_0) continue;  // no weighted rule
    GgufExportOptions o = type(f.name);
    o.imatrix = &*imatrix;
    o.imatrix_file = dat;
    const std::string ours = d / (std::string(f.name) + ".gguf"), theirs = d / (std::string(f.name) + "-lq.gguf");
    auto s = export_gguf(model, ours, o);
    ASSERT_TRUE(s.ok()) << f.name << ": " << s.status();
    auto q = test::run_program(test::llama_tool("llama-quantize"),
                               {"--pure", "--imatrix", dat, d / "f32.gguf", theirs, std::string(f.name)});
    ASSERT_EQ(q.exit_code, 0) << q.err;
    checked += expect_same_tensors(ours, theirs, std::string(f.name) + " with imatrix");
    // The weighting changed something (else the test would prove nothing).
    auto plain = export_gguf(model, d / (std::string(f.name) + "-plain.gguf"), type(f.name));
    ASSERT_TRUE(plain.ok());
    auto a = read_gguf(ours), b = read_gguf(d / (std::string(f.name) + "-plain.gguf"));
    const auto* t = a->find("blk.0.attn_q.weight");
    const auto x = tensor_bytes(*a, *t), y = tensor_bytes(*b, *b->find("blk.0.attn_q.weight"));
    EXPECT_FALSE(std::equal(x.begin(), x.end(), y.begin(), y.end())) << f.name << ": the imatrix changed nothing";
  }
  EXPECT_EQ(checked, 8 * 21);
  auto g = read_gguf(d / "Q4_K.gguf");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->strings.at("quantize.imatrix.file"), dat);
}

// GPT-2's byte-to-unicode map (what byte-level BPE vocabularies spell bytes with):
// printable bytes stand for themselves, the other 68 for U+0100 onwards, in byte order.
std::string byte_symbol(int b) {
  const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  int cp = b;
  if (!printable) {
    cp = 256;
    for (int k = 0; k < b; ++k)
      if (!((k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE && k <= 0xFF))) ++cp;
  }
  std::string out;
  if (cp < 0x80) out += static_cast<char>(cp);
  else out += static_cast<char>(0xC0 | (cp >> 6)), out += static_cast<char>(0x80 | (cp & 0x3F));
  return out;
}

// A small byte-level BPE tokenizer.json: the 256 byte symbols, three merges, two added tokens.
void write_bpe_tokenizer(const std::string& model) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_symbol(b)] = b;
  const std::string G = byte_symbol(' ');  // "Ġ"
  vocab[G + "t"] = 256, vocab["he"] = 257, vocab[G + "the"] = 258;
  nlohmann::json tj = {{"model", {{"type", "BPE"}, {"vocab", vocab},
                                  {"merges", {G + " t", "h e", nlohmann::json::array({G + "t", "he"})}}}},
                       {"added_tokens", {{{"id", 259}, {"content", "<|endoftext|>"}, {"special", true}},
                                         {{"id", 260}, {"content", "<|im_end|>"}, {"special", false}}}}};
  test::write_text(model + "/tokenizer.json", tj.dump());
  test::write_text(model + "/tokenizer_config.json", R"({"eos_token": "<|endoftext|>", "bos_token": null, "add_bos_token": false})");
}

// A Qwen2 model whose vocabulary is a byte-level BPE tokenizer.json (no tokenizer.model):
// tokens, types, merges and the special ids as the converter writes them; llama.cpp loads
// the file and its tokenizer applies our merges (" the" is one token).
TEST(GgufExport, QwenBpeVocabularyLoadsAndTokenizesInLlamaCpp) {
  SKIP_WITHOUT("llama-cli");
  test::TempDir d;
  SynthOptions o;
  o.arch = Arch::kQwen2;
  o.params = 1'000'000;
  o.dtype = DType::kF32;
  const std::string model = d / "qwen";
  ASSERT_TRUE(write_synthetic_model(model, o).ok());
  write_bpe_tokenizer(model);
  const std::string out = d / "qwen.gguf";
  auto s = export_gguf(model, out, type("F32"));
  ASSERT_TRUE(s.ok()) << s.status();
  auto g = read_gguf(out);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->strings.at("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(g->strings.at("tokenizer.ggml.pre"), "qwen2");
  EXPECT_EQ(g->array_lengths.at("tokenizer.ggml.merges"), 3u);
  EXPECT_EQ(g->integers.at("tokenizer.ggml.eos_token_id"), 259u);
  EXPECT_EQ(g->integers.count("tokenizer.ggml.bos_token_id"), 0u);
  auto gen = test::run_program(test::llama_tool("llama-cli"), {"-m", out, "-p", " the the", "-n", "1", "--temp", "0",
                                                               "-no-cnv", "--verbose-prompt"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  EXPECT_NE((gen.out + gen.err).find("258 -> ' the'"), std::string::npos) << gen.err;
  // Without any vocabulary: an error that says so, nothing written.
  std::filesystem::remove(model + "/tokenizer.json");
  auto none = export_gguf(model, d / "none.gguf", type("F32"));
  EXPECT_TRUE(absl::IsFailedPrecondition(none.status())) << none.status();
  EXPECT_FALSE(std::filesystem::exists(d / "none.gguf"));
}

// stories260k's ffn_down is 172 wide: no whole Q4_0 block, where llama-quantize gives up.
// Those tensors fall back to F16 (reported); llama.cpp loads the file and generates.
TEST(GgufExport, RowsThatFillNoBlockFallBackToF16AndTheFileStillRuns) {
  SKIP_WITHOUT("llama-cli");
  test::TempDir d;
  const std::string out = d / "q4.gguf";
  auto s = export_gguf(test::fixture("stories260k/hf-f32"), out, type("Q4_0"));
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
  EXPECT_TRUE(absl::IsFailedPrecondition(export_gguf(test::fixture("stories260k/hf-f32"), out, type("Q4_0")).status()))
      << "an existing file is never overwritten";
}

// Greedy continuation of `ids` by shardpress' own forward pass: `n` tokens.
std::vector<int32_t> greedy(const LanguageModel& m, std::vector<int32_t> ids, int n) {
  for (int k = 0; k < n; ++k) {
    auto rope = rope_table(m.config, static_cast<int64_t>(ids.size()));
    EXPECT_TRUE(rope.ok());
    std::vector<float> logits;
    score_sequence(m, *rope, ids.data(), static_cast<int64_t>(ids.size()), &logits);
    const float* last = logits.data() + (ids.size() - 1) * static_cast<size_t>(m.config.vocab_size);
    ids.push_back(static_cast<int32_t>(std::max_element(last, last + m.config.vocab_size) - last));
  }
  return ids;
}

// Llama-3 RoPE scaling (Llama 3.1, EXAONE 4): the converter's rope_freqs.weight, one
// divisor per frequency, written first; llama.cpp then generates exactly the text our own
// forward pass generates with HF's llama3 rule — which differs from the unscaled model's.
TEST(GgufExport, Llama3RopeScalingIsRopeFreqsAndLlamaCppGeneratesOurText) {
  SKIP_WITHOUT("llama-cli");
  test::TempDir d;
  const std::string model = d / "l3";
  fs::create_directories(model);
  for (const auto& e : fs::directory_iterator(test::fixture("stories260k/hf-f32")))
    fs::copy_file(e.path(), model + "/" + e.path().filename().string());
  // Wavelengths 6.3, 63, 628, 6283 against 64/4 and 64/1: one unchanged, one blended, two / 4.
  test::set_config_keys(model, {{"rope_scaling", test::llama3_rope_scaling(4.0, 64)}});
  const std::string out = d / "l3.gguf";
  auto s = export_gguf(model, out, type("F32"));
  ASSERT_TRUE(s.ok()) << s.status();
  auto g = read_gguf(out);
  ASSERT_TRUE(g.ok());
  ASSERT_EQ(g->tensors.front().name, "rope_freqs.weight");
  ASSERT_EQ(g->tensors.front().ne, std::vector<int64_t>{4});
  const auto b = tensor_bytes(*g, g->tensors.front());
  float f[4];
  std::memcpy(f, b.data(), sizeof f);
  EXPECT_EQ(f[0], 1.0f);
  EXPECT_NEAR(f[1], 3.92700f, 2e-5);  // 1 / ((1 - s) / 4 + s), s = (64 / (2 pi / 0.1) - 1) / 3
  EXPECT_EQ(f[2], 4.0f);
  EXPECT_EQ(f[3], 4.0f);
  EXPECT_EQ(g->strings.count("llama.rope.scaling.type"), 0u);

  auto hf = load_float_model(model);
  ASSERT_TRUE(hf.ok()) << hf.status();
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378};  // <s> Once upon a time
  const std::vector<int32_t> ours = greedy(hf->model, prompt, 24);
  auto back = load_float_model(out);  // the file read back (its config carried whole) decodes the same
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(greedy(back->model, prompt, 24), ours);
  auto pieces = parse_sentencepiece_model(
      [&] { auto v = test::read_bytes(model + "/tokenizer.model"); return std::string(v.begin(), v.end()); }(), "sp");
  ASSERT_TRUE(pieces.ok());
  std::string text;
  for (size_t i = 1; i < ours.size(); ++i) {
    std::string p = (*pieces)[static_cast<size_t>(ours[i])].text;
    if (p == "<0x0A>") p = "\n";
    for (size_t at; (at = p.find("\xE2\x96\x81")) != std::string::npos;) p.replace(at, 3, " ");
    text += p;
  }
  while (!text.empty() && text.front() == ' ') text.erase(0, 1);
  ASSERT_EQ(text.rfind("Once upon a time", 0), 0u) << text;
  const auto ref = nlohmann::json::parse(test::read_bytes(test::fixture("stories260k/reference.json")));
  const std::string unscaled = ref["greedy_from_bos"]["hf-f32"]["text"];
  EXPECT_NE(unscaled.substr(0, text.size()), text) << "the scaling changed nothing: this test would not see a bad file";

  auto gen = test::run_program(test::llama_tool("llama-cli"),
                               {"-m", out, "-p", "Once upon a time", "-n", "24", "--temp", "0", "-no-cnv"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  std::string theirs = gen.out;
  while (!theirs.empty() && (theirs.back() == '\n' || theirs.back() == ' ')) theirs.pop_back();
  while (!theirs.empty() && theirs.front() == ' ') theirs.erase(0, 1);
  ASSERT_GT(theirs.size(), 40u) << gen.out;
  EXPECT_EQ(text.substr(0, theirs.size()), theirs) << "llama.cpp's greedy text with rope_freqs";
}

// EXAONE 4 as newer llama.cpp's converter writes it (../shared/docs/gguf-format.md §2.3; no
// tool here loads exaone4): its tensor names (post-norms, q/k norms; no permutation), the
// sliding-window keys, the BPE vocabulary with pre-tokenizer exaone4, rope_freqs for its
// Llama-3 RoPE. llama.cpp's reader lists the file; read back it is the same model (the
// same perplexity, exactly); a Q4_K_M job plan of it has llama-quantize's types.
TEST(GgufExport, Exaone4IsWrittenAsNewerLlamaCppReadsIt) {
  SKIP_WITHOUT("llama-gguf");
  test::TempDir d;
  SynthOptions o;
  o.arch = Arch::kExaone4;
  o.params = 2'000'000;
  o.dtype = DType::kF32;
  o.layers = 4;
  o.hidden = 256;  // rows of whole K-quant blocks
  o.intermediate = 512;
  const std::string model = d / "exaone";
  ASSERT_TRUE(write_synthetic_model(model, o).ok());
  test::set_config_keys(model, {{"rope_scaling", test::llama3_rope_scaling(16.0, 8192)}});
  write_bpe_tokenizer(model);
  auto hf = load_float_model(model);
  ASSERT_TRUE(hf.ok()) << hf.status();
  const int64_t vocab = hf->model.config.vocab_size;
  const int64_t hd = hf->model.config.head_dim;

  for (const char* t : {"F32", "Q4_K_M"}) {
    SCOPED_TRACE(t);
    const std::string out = d / (std::string(t) + ".gguf");
    auto s = export_gguf(model, out, type(t));
    ASSERT_TRUE(s.ok()) << s.status();
    auto listed = test::run_program(test::llama_tool("llama-gguf"), {out, "r", "n"});
    EXPECT_EQ(listed.exit_code, 0) << listed.err;
    auto g = read_gguf(out);
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(g->strings.at("general.architecture"), "exaone4");
    EXPECT_EQ(g->integers.at("exaone4.block_count"), 4u);
    EXPECT_EQ(g->integers.at("exaone4.vocab_size"), static_cast<uint64_t>(vocab));
    EXPECT_EQ(g->integers.at("exaone4.attention.sliding_window"), 4096u);
    EXPECT_EQ(g->array_lengths.at("exaone4.attention.sliding_window_pattern"), 4u);
    EXPECT_EQ(g->integers.at("exaone4.attention.key_length"), static_cast<uint64_t>(hd));
    EXPECT_EQ(g->strings.at("tokenizer.ggml.pre"), "exaone4");
    EXPECT_EQ(g->tensors.front().name, "rope_freqs.weight");
    for (const char* n : {"blk.3.attn_q_norm.weight", "blk.3.attn_k_norm.weight", "blk.3.post_attention_norm.weight",
                          "blk.3.post_ffw_norm.weight", "blk.3.attn_output.weight", "output.weight"})
      EXPECT_NE(g->find(n), nullptr) << n;
    EXPECT_EQ(g->find("blk.0.attn_norm.weight"), nullptr);
    EXPECT_EQ(g->find("blk.0.ffn_norm.weight"), nullptr);
    if (std::string(t) == "F32") {  // not permuted: Hugging Face's rows as they are
      auto m = open_model(model);
      ASSERT_TRUE(m.ok());
      const auto hq = m->files.find("model.layers.1.self_attn.q_proj.weight")->view().bytes;
      const auto gq = tensor_bytes(*g, *g->find("blk.1.attn_q.weight"));
      EXPECT_TRUE(std::equal(hq.begin(), hq.end(), gq.begin(), gq.end()));
      // Read back: the same model, the same perplexity to the last bit.
      auto back = load_float_model(out);
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_EQ(back->model.config.layer_types, hf->model.config.layer_types);
      TokenBatch batch{2, 16, {}};
      for (int i = 0; i < 32; ++i) batch.ids.push_back((i * 37 + 5) % static_cast<int>(vocab));
      auto a = perplexity(hf->model, batch, 1), c = perplexity(back->model, batch, 1);
      ASSERT_TRUE(a.ok() && c.ok());
      EXPECT_EQ(a->perplexity, c->perplexity);
    } else {
      EXPECT_TRUE(s->fallbacks.empty()) << s->fallbacks.front();
      EXPECT_EQ(ggml_traits(static_cast<GgmlType>(g->find("output.weight")->type)).name, "Q6_K");
      EXPECT_EQ(ggml_traits(static_cast<GgmlType>(g->find("blk.1.ffn_up.weight")->type)).name, "Q4_K");
    }
  }
}

}  // namespace
}  // namespace sp
