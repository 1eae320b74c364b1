// The shardpress binary: output, -o json, exit codes (0 ok, 1 failed/corrupt, 2 bad input).
#include <cstring>
#include <filesystem>

#include "common/file_util.h"
#include "formats/model_files.h"
#include "formats/safetensors.h"
#include "formats/synthetic_model.h"
#include "common/digest.h"
#include "formats/gguf_reader.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::run_cli;

std::string stories() { return test::fixture("stories260k/hf-bf16"); }

TEST(Cli, InspectStoriesJson) {
  auto r = run_cli({"inspect", stories(), "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(j["layers"], 5);
  EXPECT_EQ(j["parameters"], 260032);
  EXPECT_EQ(j["bytes_by_dtype"]["BF16"], 520064);
  EXPECT_EQ(j["tie_word_embeddings"], true);
  ASSERT_EQ(j["shards"].size(), 7u);
  EXPECT_EQ(j["shards"][1]["id"], "layer.0");
  EXPECT_EQ(j["shards"][1]["task"], "quantize");
  EXPECT_EQ(j["shards"][1]["fits"], true);
  EXPECT_EQ(j["worker_memory"], 11ll << 30);
}

TEST(Cli, InspectTableAndBudget) {
  auto r = run_cli({"inspect", stories(), "--worker-memory", "32MiB", "--prune", "magnitude", "--scope", "tensor"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("LlamaForCausalLM (llama), 5 layers, hidden 64"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("prune+quantize"), std::string::npos);
  EXPECT_NE(r.out.find("DOES NOT FIT"), std::string::npos);  // 64 MiB task overhead > 32 MiB
  EXPECT_NE(r.out.find("layer.4"), std::string::npos);
}

TEST(Cli, InspectBadInputExitsTwo) {
  auto missing = run_cli({"inspect", "/nonexistent/model"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("/nonexistent/model: no config.json"), std::string::npos) << missing.err;
  test::TempDir d;
  test::write_text(d / "config.json", R"({"architectures": ["BertModel"], "hidden_size": 8})");
  auto bert = run_cli({"inspect", d.path()});
  EXPECT_EQ(bert.exit_code, 2);
  EXPECT_NE(bert.err.find("unsupported architecture 'BertModel'"), std::string::npos) << bert.err;
  auto mem = run_cli({"inspect", stories(), "--worker-memory", "lots"});
  EXPECT_EQ(mem.exit_code, 2);
  EXPECT_NE(mem.err.find("--worker-memory"), std::string::npos);
  EXPECT_EQ(run_cli({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(run_cli({}).exit_code, 2);
}

// Issue 11: a config.json whose sizes the files do not hold (or that no model has) is
// refused with exit 2 naming the key, by every command that reads a model, at once.
TEST(Cli, ConfigSizesTheFilesDoNotHoldExitTwoNamingTheKey) {
  test::TempDir d;
  for (const auto& [key, value] : std::vector<std::pair<std::string, json>>{{"num_hidden_layers", 10'000'000},
                                                                            {"num_hidden_layers", 1'000'000'000'000},
                                                                            {"num_hidden_layers", 64},
                                                                            {"vocab_size", 1ll << 40},
                                                                            {"hidden_size", 1ll << 40}}) {
    const std::string model = d / ("m-" + key + "-" + value.dump());
    fs::copy(stories(), model);
    json cfg = json::parse(*read_file(model + "/config.json"));
    cfg[key] = value;
    test::write_text(model + "/config.json", cfg.dump());
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"inspect", model}, {"compress", model, d / "out"},
          {"eval", model, "--ids", test::fixture("stories260k/text/eval.ids.txt"), "--samples", "2"}}) {
      auto r = run_cli(args);
      EXPECT_EQ(r.exit_code, 2) << args[0] << " " << key << "=" << value.dump() << ": " << r.err;
      EXPECT_NE(r.err.find(key), std::string::npos) << r.err;
    }
    EXPECT_FALSE(fs::exists(d / "out"));
  }
}

// `shardpress eval MODEL --ids IDS --samples N`'s perplexity (0 when it fails, which the
// test reports).
double eval_perplexity(const std::string& model, const std::string& ids, int samples) {
  auto r = run_cli({"eval", model, "--ids", ids, "--samples", std::to_string(samples), "-o", "json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? json::parse(r.out)["perplexity"].get<double>() : 0.0;
}

// Flips the 4-bit code of element `i` of a quantized weight, in place; returns the packed
// tensor's new digest.
// Where tensor `name`'s bytes begin in the safetensors `file`, and how many there are.
std::pair<uint64_t, uint64_t> tensor_span(const std::string& file, const std::string& name) {
  auto f = SafetensorsFile::open(file);
  EXPECT_TRUE(f.ok());
  const TensorInfo* t = (*f)->find(name);
  EXPECT_NE(t, nullptr) << name;
  return {(*f)->data_offset() + t->begin, t->nbytes()};
}

std::string flip_code(const std::string& file, const std::string& weight, uint64_t i) {
  const auto [begin, n] = tensor_span(file, weight);
  std::vector<uint8_t> bytes = test::read_bytes(file);
  bytes[begin + i / 2] ^= i % 2 == 0 ? 0x10 : 0x01;  // element 2k is the high nibble
  test::write_bytes(file, bytes);
  return digest_hex(std::span<const uint8_t>(bytes.data() + begin, n));
}

// Issue 11, fault 9: one flipped code stays inside every error tolerance; verify counts
// the codes that differ from round-to-nearest of the original and fails on them with
// --exact, and by default when the manifest records that the checkpoint was made by
// round-to-nearest.
TEST(Cli, VerifyCountsCodesThatDifferFromRoundToNearest) {
  test::TempDir d;
  const std::string w = "model.layers.2.mlp.up_proj.weight";
  ASSERT_EQ(run_cli({"compress", stories(), d / "rtn"}).exit_code, 0);
  auto clean = run_cli({"verify", d / "rtn", "--against", stories(), "-o", "json"});
  ASSERT_EQ(clean.exit_code, 0) << clean.err;
  const json cj = json::parse(clean.out);
  EXPECT_EQ(cj["exact"], true);
  for (const auto& t : cj["tensors"])
    if (t["quantized"] == true) EXPECT_EQ(t["codes_differ"], 0) << t["name"];

  // Without a manifest (as bitsandbytes writes it): counted, and fatal only with --exact.
  fs::copy(d / "rtn", d / "bare", fs::copy_options::recursive);
  fs::remove(d / "bare/shardpress_manifest.json");
  flip_code(d / "bare/model.safetensors", w, 101);
  auto lenient = run_cli({"verify", d / "bare", "--against", stories(), "-o", "json"});
  EXPECT_EQ(lenient.exit_code, 0) << lenient.err;
  const json verified = json::parse(lenient.out);  // a local: a range-for over a temporary's member dangles
  int seen = 0;
  for (const auto& t : verified["tensors"])
    if (t["name"] == w) {
      ++seen;
      EXPECT_EQ(t["codes_differ"], 1);
    }
  EXPECT_EQ(seen, 1);
  auto table = run_cli({"verify", d / "bare", "--against", stories()});
  EXPECT_NE(table.out.find("CODES != RTN"), std::string::npos) << table.out;
  auto exact = run_cli({"verify", d / "bare", "--against", stories(), "--exact"});
  EXPECT_EQ(exact.exit_code, 1) << exact.out;
  EXPECT_NE(exact.err.find(w + ": 1 of 11008 NF4 codes differ from round to nearest of the original (the first at "
                               "element 101)"),
            std::string::npos)
      << exact.err;
  EXPECT_EQ(run_cli({"verify", d / "bare", "--exact"}).exit_code, 2) << "--exact needs --against";

  // The manifest says round-to-nearest (and its digests were updated along with the
  // code): exact by default.
  fs::copy(d / "rtn", d / "relabelled", fs::copy_options::recursive);
  const std::string digest = flip_code(d / "relabelled/model.safetensors", w, 7);
  json m = json::parse(test::read_bytes(d / "relabelled/shardpress_manifest.json"));
  m["tensors"][w]["digest"] = digest;
  test::write_text(d / "relabelled/shardpress_manifest.json", m.dump());
  EXPECT_EQ(run_cli({"verify", d / "relabelled"}).exit_code, 0) << "byte-consistent on its own";
  auto strict = run_cli({"verify", d / "relabelled", "--against", stories()});
  EXPECT_EQ(strict.exit_code, 1) << strict.out;
  EXPECT_NE(strict.err.find(w + ": 1 of 11008 NF4 codes differ"), std::string::npos) << strict.err;

  // Magnitude pruning is reproduced; GPTQ is not round-to-nearest (only --exact fails it).
  ASSERT_EQ(run_cli({"compress", stories(), d / "pruned", "--prune", "magnitude", "--sparsity", "0.3"}).exit_code, 0);
  auto pruned = run_cli({"verify", d / "pruned", "--against", stories()});
  EXPECT_EQ(pruned.exit_code, 0) << pruned.err;
  EXPECT_NE(pruned.out.find("compared with magnitude 30% per row, then round to nearest"), std::string::npos) << pruned.out;
  ASSERT_EQ(run_cli({"compress", stories(), d / "gptq", "--method", "gptq", "--calib-ids",
                     test::fixture("stories260k/text/calib.ids.txt"), "--calib-samples", "8", "--scale-search", "0"})
                .exit_code,
            0);
  EXPECT_EQ(run_cli({"verify", d / "gptq", "--against", stories()}).exit_code, 0);
  auto gptq_exact = run_cli({"verify", d / "gptq", "--against", stories(), "--exact"});
  EXPECT_EQ(gptq_exact.exit_code, 1);
  EXPECT_NE(gptq_exact.err.find("data-dependent method"), std::string::npos) << gptq_exact.err;
}

TEST(Cli, CompressThenVerifyThenCorrupt) {
  test::TempDir d;
  const std::string out = d / "nf4";
  auto c = run_cli({"compress", stories(), out, "-o", "json"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const json cj = json::parse(c.out);
  EXPECT_EQ(cj["quantized_tensors"], 35);
  EXPECT_EQ(cj["shards"], 7);

  auto v = run_cli({"verify", out, "--against", stories()});
  ASSERT_EQ(v.exit_code, 0) << v.out << v.err;
  EXPECT_NE(v.out.find("35 quantized, 12 unquantized"), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("model.layers.4.mlp.down_proj.weight"), std::string::npos);
  EXPECT_NE(v.out.find("\nOK\n"), std::string::npos);

  auto vj = run_cli({"verify", out, "--against", stories(), "-o", "json"});
  ASSERT_EQ(vj.exit_code, 0);
  const json j = json::parse(vj.out);
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["tensors"].size(), 47u);

  // Flip one byte in the middle of a packed weight.
  uint64_t off;
  std::string path;
  {
    auto files = ModelFiles::open(out);
    ASSERT_TRUE(files.ok());
    off = files->find("model.layers.0.self_attn.v_proj.weight")->file_offset() + 7;
    path = files->files()[0]->path();
  }
  auto bytes = test::read_bytes(path);
  bytes[off] ^= 0x01;
  test::write_bytes(path, bytes);
  auto bad = run_cli({"verify", out});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("model.layers.0.self_attn.v_proj.weight: bytes differ from the manifest"), std::string::npos)
      << bad.err;
}

TEST(Cli, CompressReportsSparsityPerTensor) {
  test::TempDir d;
  auto c = run_cli({"compress", stories(), d / "p", "--prune", "magnitude", "--sparsity", "0.25", "--scope", "row"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(c.out.find("35 quantized to NF4, 35 pruned"), std::string::npos) << c.out;
  // down_proj is 64x172: floor(0.25 * 172) = 43 per row, 2752 of 11008 = 25.00%.
  EXPECT_NE(c.out.find("model.layers.0.mlp.down_proj.weight     2,752   2,752  11,008  25.00%"), std::string::npos)
      << c.out;
  auto v = run_cli({"verify", d / "p", "--against", stories()});
  EXPECT_EQ(v.exit_code, 0) << v.err;
}

// compress --format gguf --type T: one llama.cpp file; rows that fill no block of T (the
// fixture's 172-wide ffn_down) fall back to F16 and are listed. Jobs do not write GGUF yet:
// `local` refuses such a spec, saying so.
TEST(Cli, CompressWritesGguf) {
  test::TempDir d;
  auto c = run_cli({"compress", stories(), d / "s.gguf", "--format", "gguf", "--type", "Q8_0", "-o", "json"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const json j = json::parse(c.out);
  EXPECT_EQ(j["type"], "Q8_0");
  EXPECT_EQ(j["tensors"], 47);
  EXPECT_EQ(j["fallbacks"].size(), 5u);
  EXPECT_GT(j["bytes"].get<uint64_t>(), 100'000u);
  EXPECT_TRUE(fs::is_regular_file(d / "s.gguf"));
  auto again = run_cli({"compress", stories(), d / "s.gguf", "--format", "gguf", "--type", "Q8_0"});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;
  auto bad = run_cli({"compress", stories(), d / "t.gguf", "--format", "gguf", "--type", "Q9_9"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("'quantize.type' is 'Q9_9'"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(d / "t.gguf"));
  // A mix, human output: the type counts and bits per weight.
  auto mix = run_cli({"compress", stories(), d / "m.gguf", "--format", "gguf", "--type", "q4_k_m"});
  ASSERT_EQ(mix.exit_code, 0) << mix.err;
  EXPECT_NE(mix.out.find("types         5 F16, 11 F32, 28 Q5_0, 3 Q8_0; "), std::string::npos) << mix.out;
  // An importance matrix that is not one: the error names the flag and the file; no output.
  test::write_text(d / "bad.dat", "not an imatrix");
  auto bad_m = run_cli({"compress", stories(), d / "i.gguf", "--format", "gguf", "--type", "Q4_0", "--imatrix", d / "bad.dat"});
  EXPECT_EQ(bad_m.exit_code, 2);
  EXPECT_NE(bad_m.err.find("--imatrix"), std::string::npos) << bad_m.err;
  EXPECT_NE(bad_m.err.find("not an importance-matrix file"), std::string::npos) << bad_m.err;
  EXPECT_FALSE(fs::exists(d / "i.gguf"));
  test::write_text(d / "g.yaml", "name: g\nmodel: " + stories() + "\noutput: " + (d / "g.gguf") +
                                     "\nquantize: {format: gguf, type: Q4_0}\n");
  auto job = run_cli({"local", d / "g.yaml", "--state-dir", d / "state"});
  EXPECT_EQ(job.exit_code, 0) << job.err;
  EXPECT_TRUE(fs::is_regular_file(d / "g.gguf"));
  auto same = run_cli({"verify", d / "g.gguf", "--against", stories(), "--exact"});
  EXPECT_EQ(same.exit_code, 0) << same.out << same.err;
  test::write_text(d / "i.yaml", "name: i\nmodel: " + stories() + "\noutput: " + (d / "i2.gguf") +
                                     "\nquantize: {format: gguf, type: Q4_0, imatrix: " + (d / "bad.dat") + "}\n");
  auto with_imatrix = run_cli({"local", d / "i.yaml", "--state-dir", d / "state2"});
  EXPECT_NE(with_imatrix.exit_code, 0);
  EXPECT_NE(with_imatrix.err.find("bad.dat: not an importance-matrix file"), std::string::npos) << with_imatrix.err;
  EXPECT_FALSE(fs::exists(d / "i2.gguf"));
}

// A `local` job of `format` writes the bytes `compress` wrote to `compressed`; GPTQ in
// `format` (into d/gptq) writes a checkpoint verify accepts.
void job_equals_compress_and_gptq_verifies(const test::TempDir& d, const std::string& format,
                                           const std::string& compressed) {
  test::write_text(d / "j.yaml", "model: " + stories() + "\noutput: " + (d / "j") + "\nquantize: {format: " + format + "}\n");
  auto j = run_cli({"local", d / "j.yaml", "--state-dir", d / "state"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  EXPECT_EQ(test::read_bytes(d / "j/model.safetensors"), test::read_bytes(compressed + "/model.safetensors"));
  auto g = run_cli({"compress", stories(), d / "gptq", "--format", format, "--method", "gptq", "--calib-ids",
                    test::fixture("stories260k/text/calib.ids.txt"), "--calib-samples", "64"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_EQ(run_cli({"verify", d / "gptq"}).exit_code, 0);
}

// bitsandbytes FP4 (`--format fp4`): a checkpoint verify accepts as exactly FP4 round to
// nearest of the original (config bnb_4bit_quant_type fp4, the __fp4 state blobs), that
// eval reads; a `local` job writes the same tensors; GPTQ on the FP4 grid beats round to
// nearest; a config that names the other type is reported.
TEST(Cli, Fp4CheckpointsVerifyEvaluateAndMatchJobs) {
  test::TempDir d;
  auto c = run_cli({"compress", stories(), d / "fp4", "--format", "fp4"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const json cfg = json::parse(test::read_bytes(d / "fp4/config.json"));
  EXPECT_EQ(cfg["quantization_config"]["bnb_4bit_quant_type"], "fp4");
  auto v = run_cli({"verify", d / "fp4", "--against", stories(), "--exact"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  auto files = ModelFiles::open(d / "fp4");
  ASSERT_TRUE(files.ok());
  EXPECT_NE(files->find("model.layers.0.self_attn.q_proj.weight.quant_state.bitsandbytes__fp4"), nullptr);
  const std::string ids = test::fixture("stories260k/text/eval.ids.txt");
  auto ppl = [&](const std::string& m) { return eval_perplexity(m, ids, 32); };
  const double rtn = ppl(d / "fp4");
  EXPECT_GT(rtn, ppl(stories()));
  job_equals_compress_and_gptq_verifies(d, "fp4", d / "fp4");
  EXPECT_LT(ppl(d / "gptq"), rtn);
  // The config says nf4 but the weights are FP4: every weight is reported.
  json bad = cfg;
  bad["quantization_config"]["bnb_4bit_quant_type"] = "nf4";
  fs::remove(d / "fp4/config.json");
  test::write_text(d / "fp4/config.json", bad.dump());
  auto wrong = run_cli({"verify", d / "fp4"});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("bnb_4bit_quant_type is nf4 in config.json"), std::string::npos) << wrong.err;
}

// LLM.int8 (`--format int8`): Linear8bitLt's tensors (int8 weight, SCB, 0-dim
// weight_format) and a load_in_8bit config; verify --exact, eval, a `local` job with the
// same bytes, GPTQ on the row grid; a code of -128 and a 4-bit config are reported.
TEST(Cli, Int8CheckpointsVerifyEvaluateAndMatchJobs) {
  test::TempDir d;
  auto c = run_cli({"compress", stories(), d / "i8", "--format", "int8"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(c.out.find("35 quantized to INT8"), std::string::npos) << c.out;
  const json cfg = json::parse(test::read_bytes(d / "i8/config.json"));
  EXPECT_EQ(cfg["quantization_config"]["load_in_8bit"], true);
  EXPECT_EQ(cfg["quantization_config"]["load_in_4bit"], false);
  EXPECT_TRUE(cfg["quantization_config"]["llm_int8_threshold"].is_number_float());
  auto files = ModelFiles::open(d / "i8");
  ASSERT_TRUE(files.ok());
  const TensorRef* w = files->find("model.layers.1.mlp.up_proj.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->info->dtype, DType::kI8);
  const TensorRef* wf = files->find("model.layers.1.mlp.up_proj.weight_format");
  ASSERT_NE(wf, nullptr);
  EXPECT_TRUE(wf->info->shape.empty());
  EXPECT_NE(files->find("model.layers.1.mlp.up_proj.SCB"), nullptr);
  auto v = run_cli({"verify", d / "i8", "--against", stories(), "--exact"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  const std::string ids = test::fixture("stories260k/text/eval.ids.txt");
  auto ppl = [&](const std::string& m) { return eval_perplexity(m, ids, 32); };
  const double orig = ppl(stories()), rtn = ppl(d / "i8");
  EXPECT_GT(rtn, orig);
  EXPECT_LT(rtn, orig * 1.01);  // 8 bits: within 1 %
  job_equals_compress_and_gptq_verifies(d, "int8", d / "i8");
  // A 4-bit config over int8 weights: every weight is reported.
  fs::copy(d / "i8", d / "bad", fs::copy_options::recursive);
  fs::remove(d / "bad/shardpress_manifest.json");
  json four = cfg;
  four["quantization_config"]["load_in_8bit"] = false;
  four["quantization_config"]["load_in_4bit"] = true;
  fs::remove(d / "bad/config.json");
  test::write_text(d / "bad/config.json", four.dump());
  auto wrong = run_cli({"verify", d / "bad"});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("an int8 weight, but config.json says load_in_4bit"), std::string::npos) << wrong.err;
  // A code of -128 (outside LLM.int8's -127..127) is reported naming the weight.
  fs::copy(d / "i8", d / "m128", fs::copy_options::recursive);
  fs::remove(d / "m128/shardpress_manifest.json");
  const std::string file = d / "m128/model.safetensors";
  const auto [begin, n] = tensor_span(file, "model.layers.1.mlp.up_proj.weight");
  ASSERT_GT(n, 0u);
  std::vector<uint8_t> bytes = test::read_bytes(file);
  bytes[begin] = 0x80;
  test::write_bytes(file, bytes);
  auto m128 = run_cli({"verify", d / "m128"});
  EXPECT_EQ(m128.exit_code, 1);
  EXPECT_NE(m128.err.find("model.layers.1.mlp.up_proj.weight: a code is -128"), std::string::npos) << m128.err;
}

// EXAONE 4 to GGUF as a job (`local`: tasks per shard, the assembly adding rope_freqs from
// the config) writes what `compress` writes; verify and eval read it back (its config
// carried in the file).
TEST(Cli, Exaone4GgufJobEqualsCompressAndReadsBack) {
  test::TempDir d;
  SynthOptions o;
  o.arch = Arch::kExaone4;
  o.params = 1'000'000;
  o.dtype = DType::kF32;
  o.layers = 4;
  const std::string model = d / "exaone";
  ASSERT_TRUE(write_synthetic_model(model, o).ok());
  test::set_config_keys(model, {{"rope_scaling", test::llama3_rope_scaling(16.0, 8192)}});
  fs::copy_file(test::fixture("stories260k/hf-f32/tokenizer.model"), model + "/tokenizer.model");
  auto c = run_cli({"compress", model, d / "c.gguf", "--format", "gguf", "--type", "Q8_0"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  test::write_text(d / "j.yaml", "model: " + model + "\noutput: " + (d / "j.gguf") + "\nquantize: {format: gguf, type: Q8_0}\n");
  auto j = run_cli({"local", d / "j.yaml", "--state-dir", d / "state"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  auto data = [](const std::string& path) {
    auto g = read_gguf(path);
    EXPECT_TRUE(g.ok()) << path;
    const auto b = g->file.bytes();
    EXPECT_EQ(g->tensors.front().name, "rope_freqs.weight");
    return std::vector<uint8_t>(b.begin() + static_cast<std::ptrdiff_t>(g->data_offset), b.end());
  };
  EXPECT_EQ(data(d / "j.gguf"), data(d / "c.gguf"));
  auto v = run_cli({"verify", d / "j.gguf", "--against", model});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  auto in = run_cli({"inspect", d / "j.gguf", "-o", "json"});
  ASSERT_EQ(in.exit_code, 0) << in.err;
  const auto ij = nlohmann::json::parse(in.out);
  EXPECT_EQ(ij["architecture"], "exaone4");
  EXPECT_EQ(ij["file_type"], "Q8_0");
  EXPECT_EQ(ij["job"], "job-0001");
  EXPECT_EQ(ij["by_type"]["F32"]["tensors"].get<int>(), 1 + 4 * 4 + 1);  // rope_freqs, 4 norms a layer, output_norm
  const std::string ids = test::fixture("stories260k/text/eval.ids.txt");
  auto e = run_cli({"eval", d / "j.gguf", "--ids", ids, "--samples", "4", "-o", "json"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_GT(nlohmann::json::parse(e.out)["perplexity"].get<double>(), 1.0);
}

// A GGUF file through verify, eval and inspect: the F32 export evaluates to the original's
// perplexity exactly; a Q4_K_M file verifies against the original with every block equal to
// round-to-nearest; inspect shows the planned types without writing anything.
TEST(Cli, VerifyEvalAndInspectReadGguf) {
  test::TempDir d;
  ASSERT_EQ(run_cli({"compress", stories(), d / "f32.gguf", "--format", "gguf", "--type", "F32"}).exit_code, 0);
  ASSERT_EQ(run_cli({"compress", stories(), d / "q.gguf", "--format", "gguf", "--type", "Q4_K_M"}).exit_code, 0);
  const std::string ids = test::fixture("stories260k/text/eval.ids.txt");
  auto ppl = [&](const std::string& m) { return eval_perplexity(m, ids, 8); };
  const double original = ppl(stories()), f32 = ppl(d / "f32.gguf"), q = ppl(d / "q.gguf");
  EXPECT_EQ(f32, original);
  EXPECT_GT(q, original);
  EXPECT_LT(q, original * 1.1);
  auto v = run_cli({"verify", d / "q.gguf", "--against", stories(), "--exact"});
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_NE(v.out.find("format      GGUF Q4_K_M, llama"), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("BLOCKS != RTN"), std::string::npos) << v.out;
  auto vj = run_cli({"verify", d / "q.gguf", "-o", "json"});
  ASSERT_EQ(vj.exit_code, 0) << vj.err;
  EXPECT_EQ(json::parse(vj.out)["tensors"][0]["type"], "Q8_0");  // the tied embedding: the output rule
  auto i = run_cli({"inspect", stories(), "--format", "gguf", "--type", "Q4_K_M", "-o", "json"});
  ASSERT_EQ(i.exit_code, 0) << i.err;
  const json plan = json::parse(i.out);
  EXPECT_EQ(plan["gguf_type"], "Q4_K_M");
  EXPECT_EQ(plan["tensors"].size(), 47u);
  EXPECT_EQ(plan["fallbacks"].size(), 35u);  // 5 layers x 7 projections (token_embd is Q8_0 by rule)
  uint64_t sum = 0;
  for (const auto& t : plan["tensors"]) sum += t["bytes"].get<uint64_t>();
  EXPECT_EQ(plan["tensor_bytes"].get<uint64_t>(), sum);
}

// Importance values computed by shardpress: `imatrix` writes llama.cpp's file, and
// `compress --format gguf --calib-ids` (computing them in-process) writes exactly what
// `--imatrix` with that file writes, which differs from plain round-to-nearest.
TEST(Cli, ImatrixFromCalibrationIds) {
  test::TempDir d;
  const std::string ids = test::fixture("stories260k/text/calib.ids.txt");
  auto m = run_cli({"imatrix", stories(), "--ids", ids, "--samples", "8", "-o", d / "m.dat"});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  EXPECT_NE(m.out.find("35 weights, 8 sequences"), std::string::npos) << m.out;
  auto again = run_cli({"imatrix", stories(), "--ids", ids, "--samples", "8", "-o", d / "m.dat"});
  EXPECT_NE(again.exit_code, 0);  // never overwritten
  ASSERT_EQ(run_cli({"compress", stories(), d / "a.gguf", "--format", "gguf", "--type", "Q4_0", "--calib-ids", ids,
                     "--calib-samples", "8"}).exit_code, 0);
  ASSERT_EQ(run_cli({"compress", stories(), d / "b.gguf", "--format", "gguf", "--type", "Q4_0", "--imatrix", d / "m.dat"})
                .exit_code, 0);
  ASSERT_EQ(run_cli({"compress", stories(), d / "c.gguf", "--format", "gguf", "--type", "Q4_0"}).exit_code, 0);
  auto data = [](const std::string& path) {  // the tensor data: after the metadata (which names the source)
    auto g = read_gguf(path);
    EXPECT_TRUE(g.ok()) << path;
    const auto b = g->file.bytes();
    return std::vector<uint8_t>(b.begin() + static_cast<std::ptrdiff_t>(g->data_offset), b.end());
  };
  EXPECT_EQ(data(d / "a.gguf"), data(d / "b.gguf"));
  EXPECT_NE(data(d / "a.gguf"), data(d / "c.gguf"));
  // The same as jobs: the file in quantize.imatrix, or the values computed by the layer tasks.
  const std::string head = "model: " + stories() + "\nquantize: {format: gguf, type: Q4_0";
  test::write_text(d / "f.yaml", "output: " + (d / "f.gguf") + "\n" + head + ", imatrix: " + (d / "m.dat") + "}\n");
  test::write_text(d / "k.yaml", "output: " + (d / "k.gguf") + "\n" + head + "}\ncalibrate: {ids: " + ids +
                                     ", samples: 8}\n");
  auto fj = run_cli({"local", d / "f.yaml", "--state-dir", d / "s1"});
  ASSERT_EQ(fj.exit_code, 0) << fj.err;
  auto kj = run_cli({"local", d / "k.yaml", "--state-dir", d / "s2"});
  ASSERT_EQ(kj.exit_code, 0) << kj.err;
  EXPECT_EQ(data(d / "f.gguf"), data(d / "a.gguf"));
  EXPECT_EQ(data(d / "k.gguf"), data(d / "a.gguf"));
  auto both = run_cli({"compress", stories(), d / "x.gguf", "--format", "gguf", "--type", "Q4_0", "--imatrix",
                       d / "m.dat", "--calib-ids", ids});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("not both"), std::string::npos) << both.err;
}

// GPTQ on llama.cpp's Q4_0 grid: a lower perplexity than round-to-nearest (shardpress
// eval on the dequantized file), and llama.cpp loads the file.
TEST(Cli, GptqGgufBeatsRoundToNearest) {
  test::TempDir d;
  const std::string calib = test::fixture("stories260k/text/calib.ids.txt");
  const std::string ids = test::fixture("stories260k/text/eval.ids.txt");
  auto g = run_cli({"compress", stories(), d / "g.gguf", "--format", "gguf", "--type", "Q4_0", "--method", "gptq",
                    "--calib-ids", calib, "-o", "json"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_GT(json::parse(g.out)["gptq_loss"].get<double>(), 0.0);
  ASSERT_EQ(run_cli({"compress", stories(), d / "r.gguf", "--format", "gguf", "--type", "Q4_0"}).exit_code, 0);
  auto ppl = [&](const std::string& m) { return eval_perplexity(m, ids, 64); };
  const double gptq = ppl(d / "g.gguf"), rtn = ppl(d / "r.gguf");
  EXPECT_LT(gptq, rtn - 0.05) << "GPTQ " << gptq << " vs RTN " << rtn;
  auto v = run_cli({"verify", d / "g.gguf", "--against", stories()});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  auto no_ids = run_cli({"compress", stories(), d / "x.gguf", "--format", "gguf", "--type", "Q4_0", "--method", "gptq"});
  EXPECT_EQ(no_ids.exit_code, 2);
  EXPECT_NE(no_ids.err.find("--calib-ids"), std::string::npos) << no_ids.err;
  if (!test::llama_tool("llama-cli").empty()) {
    auto gen = test::run_program(test::llama_tool("llama-cli"),
                                 {"-m", d / "g.gguf", "-p", "Once upon a time", "-n", "20", "--temp", "0", "-no-cnv"});
    EXPECT_EQ(gen.exit_code, 0) << gen.err;
  }
}

TEST(Cli, CompressBadInputExitsTwoAndWritesNothing) {
  test::TempDir d;
  auto bs = run_cli({"compress", stories(), d / "o1", "--blocksize", "100"});
  EXPECT_EQ(bs.exit_code, 2);
  EXPECT_NE(bs.err.find("'quantize.blocksize' is 100"), std::string::npos) << bs.err;
  auto sp = run_cli({"compress", stories(), d / "o2", "--prune", "magnitude", "--sparsity", "1.5"});
  EXPECT_EQ(sp.exit_code, 2);
  EXPECT_NE(sp.err.find("'prune.sparsity' is 1.5"), std::string::npos) << sp.err;
  auto scope = run_cli({"compress", stories(), d / "o3", "--prune", "magnitude", "--scope", "column"});
  EXPECT_EQ(scope.exit_code, 2);
  auto half = run_cli({"compress", stories(), d / "o3", "--prune", "magnitude", "--scope", "2:4", "--sparsity", "0.3"});
  EXPECT_EQ(half.exit_code, 2);
  EXPECT_NE(half.err.find("2:4 pruning removes exactly 2 of every 4 weights"), std::string::npos) << half.err;
  fs::create_directory(d / "exists");
  auto ex = run_cli({"compress", stories(), d / "exists"});
  EXPECT_EQ(ex.exit_code, 2);
  EXPECT_NE(ex.err.find("already exists"), std::string::npos);
  auto dev = run_cli({"compress", stories(), d / "o4", "--device", "gpu"});
  EXPECT_EQ(dev.exit_code, 2);
  EXPECT_NE(dev.err.find("--device gpu: expected auto, cpu or cuda:N"), std::string::npos) << dev.err;
  auto missing = run_cli({"compress", stories(), d / "o5", "--device", "cuda:99"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("--device cuda:99"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(d / "o1"));
  EXPECT_FALSE(fs::exists(d / "o2"));
  EXPECT_FALSE(fs::exists(d / "o3"));
  EXPECT_FALSE(fs::exists(d / "o4"));
  EXPECT_FALSE(fs::exists(d / "o5"));
}

TEST(Cli, VerifyMissingFolderExitsTwoAndNonCheckpointExitsOne) {
  EXPECT_EQ(run_cli({"verify", "/nonexistent/out"}).exit_code, 2);
  auto orig = run_cli({"verify", stories()});  // an unquantized model is not an NF4 checkpoint
  EXPECT_EQ(orig.exit_code, 1);
  EXPECT_NE(orig.err.find("no quantization_config"), std::string::npos) << orig.err;
}


// A model with EXAONE-4.0-32B's real shapes (2 of its 64 layers): the safetensors file is
// sparse (header + ftruncate), so the test costs no disk. inspect must read the layout
// and size each layer's task for an 11 GiB worker.
TEST(Cli, InspectExaone32bShapedModel) {
  test::TempDir d;
  test::write_exaone32b_headers(d.path(), 2);

  auto r = run_cli({"inspect", d.path(), "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["sliding_layers"], 2);  // "LLLG": layers 0 and 1 are sliding
  ASSERT_EQ(j["shards"].size(), 5u);  // embed, 2 layers, norm, lm_head
  const json& layer = j["shards"][1];
  EXPECT_EQ(layer["id"], "layer.0");
  EXPECT_EQ(layer["params"], 483666176);  // architectures.md §7
  EXPECT_EQ(layer["bytes"], 967332352);
  // input 922.5 MiB + NF4 output ~248 MiB + absmax scratch + 64 MiB allowance
  EXPECT_GT(layer["peak_memory"].get<uint64_t>(), 1200ull << 20);
  EXPECT_LT(layer["peak_memory"].get<uint64_t>(), 1300ull << 20);
  EXPECT_EQ(layer["fits"], true);
  auto small = run_cli({"inspect", d.path(), "--worker-memory", "1GiB", "-o", "json"});
  EXPECT_EQ(json::parse(small.out)["shards"][1]["fits"], false);

  // GPTQ with 128 x 2048 calibration tokens: the plan of a GPU worker with 11 GiB (a GTX
  // 1080 Ti): the forward in micro-batches of 8 sequences, down_proj's GPTQ with 6 of the
  // scale search's 11 loops side by side; every projection on the GPU.
  std::string ids;
  for (int line = 0; line < 128; ++line) {
    for (int t = 0; t < 2048; ++t) ids += std::to_string((line * 2048 + t) % 102400) + (t + 1 < 2048 ? " " : "\n");
  }
  test::write_text(d / "calib.ids.txt", ids);
  auto g = run_cli({"inspect", d.path(), "--method", "gptq", "--calib-ids", d / "calib.ids.txt", "--calib-samples",
                    "128", "--seq-len", "2048", "--worker-memory", "11GiB", "-o", "json"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  const json gpu = json::parse(g.out)["gpu_worker"];
  EXPECT_EQ(gpu["sequences_per_forward_batch"], 8);
  ASSERT_EQ(gpu["gptq"].size(), 7u);
  for (const auto& p : gpu["gptq"]) EXPECT_GE(p["loops_side_by_side"].get<int>(), 1) << p["name"];
  EXPECT_EQ(gpu["gptq"][6]["name"], "down_proj");
  EXPECT_EQ(gpu["gptq"][6]["loops_side_by_side"], 6);
  EXPECT_EQ(gpu["gptq"][0]["loops_side_by_side"], 11);
}

// simulate: a 32B-shaped job on a header-only folder (the token file need not exist when
// samples and seq_len are given), several labs and modes in one call, human and JSON.
TEST(Cli, SimulateA32bJobOnAHeaderOnlyFolder) {
  test::TempDir d;
  test::write_exaone32b_headers(d.path(), 4);
  test::write_text(d / "job.yaml", "name: big\nmodel: " + d.path() + "\noutput: " + (d / "out") +
                                       "\nquantize: {format: nf4, method: gptq}\n"
                                       "calibrate: {ids: " + (d / "later.ids.txt") + ", samples: 128, seq_len: 2048}\n");
  auto r = run_cli({"simulate", d / "job.yaml", "--workers", "1*gtx1080ti", "--workers", "4*gtx1080ti", "--modes",
                    "sequential,pipelined", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_EQ(j["runs"].size(), 4u);
  EXPECT_EQ(j["runs"][0]["mode"], "sequential");
  EXPECT_EQ(j["runs"][3]["mode"], "pipelined");
  EXPECT_EQ(j["runs"][3]["workers"].size(), 4u);
  EXPECT_LT(j["runs"][3]["wall_s"].get<double>(), j["runs"][1]["wall_s"].get<double>());
  for (const auto& run : j["runs"]) {
    EXPECT_GT(run["wall_s"].get<double>(), 0);
    EXPECT_GT(run["coordinator_disk_peak"].get<uint64_t>(), run["output_bytes"].get<uint64_t>());
    EXPECT_GT(run["workers"][0]["ram_peak"].get<uint64_t>(), 0u);
  }
  auto human = run_cli({"simulate", d / "job.yaml", "--workers", "2*gtx1080ti"});
  ASSERT_EQ(human.exit_code, 0) << human.err;
  for (const char* want : {"wall:", "coordinator disk peak:", "WORKER", "VRAM PEAK", "gtx1080ti"})
    EXPECT_NE(human.out.find(want), std::string::npos) << want << "\n" << human.out;

  auto bad = run_cli({"simulate", d / "job.yaml", "--workers", "4*tpu"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("unknown device 'tpu'"), std::string::npos) << bad.err;
  auto small = run_cli({"simulate", d / "job.yaml", "--workers", "2*gtx1080ti:ram=8GiB"});
  EXPECT_NE(small.exit_code, 0);
  EXPECT_NE(small.err.find("layer.0 needs"), std::string::npos) << small.err;
  test::write_text(d / "nolen.yaml", "name: big\nmodel: " + d.path() + "\noutput: " + (d / "out") +
                                         "\nquantize: {format: nf4, method: gptq}\ncalibrate: {ids: " +
                                         (d / "later.ids.txt") + "}\n");
  auto nolen = run_cli({"simulate", d / "nolen.yaml", "--workers", "2*gtx1080ti"});
  EXPECT_EQ(nolen.exit_code, 2);
  EXPECT_NE(nolen.err.find("later.ids.txt is not there"), std::string::npos) << nolen.err;
  auto rtn_modes = run_cli({"simulate", d / "nolen.yaml", "--workers", "2*gtx1080ti", "--modes", "fast"});
  EXPECT_EQ(rtn_modes.exit_code, 2);

  // --checkpoint-every: one row per value; pipelined ones are skipped with a note.
  auto every = run_cli({"simulate", d / "job.yaml", "--workers", "4*gtx1080ti", "--modes", "sequential,pipelined",
                        "--checkpoint-every", "1,2"});
  ASSERT_EQ(every.exit_code, 0) << every.err;
  for (const char* want : {"sequential  ", "sequential, checkpoint_every 2", "pipelined  ",
                           "note: pipelined with checkpoint_every 2 not simulated"})
    EXPECT_NE(every.out.find(want), std::string::npos) << want << "\n" << every.out;
  auto only_piped = run_cli({"simulate", d / "job.yaml", "--workers", "4*gtx1080ti", "--modes", "pipelined",
                             "--checkpoint-every", "4"});
  EXPECT_EQ(only_piped.exit_code, 2);
  EXPECT_NE(only_piped.err.find("nothing to simulate"), std::string::npos) << only_piped.err;
  EXPECT_EQ(run_cli({"simulate", d / "job.yaml", "--workers", "4*gtx1080ti", "--checkpoint-every", "0"}).exit_code, 2);
}

// simulate --local projects `shardpress local` on this machine from the real fixture's
// token file (its shape read from the file).
TEST(Cli, SimulateLocalStoriesJob) {
  test::TempDir d;
  test::write_text(d / "job.yaml", "name: s\nmodel: " + test::fixture("stories260k/hf-bf16") + "\noutput: " +
                                       (d / "out") + "\nquantize: {format: nf4, method: gptq}\ncalibrate: {ids: " +
                                       test::fixture("stories260k/text/calib.ids.txt") + ", samples: 128}\n");
  auto r = run_cli({"simulate", d / "job.yaml", "--local", "--workers", "2*cpu", "--cores", "2", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json run = json::parse(r.out)["runs"][0];
  EXPECT_EQ(run["tasks"], 5);
  EXPECT_EQ(run["coordinator_bytes_out"], 128u * 256 * 4);  // only the token ids are fetched: weights read in place
  EXPECT_GT(run["wall_s"].get<double>(), 1.0);
  EXPECT_LT(run["wall_s"].get<double>(), 10.0);
  EXPECT_FALSE(fs::exists(d / "out"));  // a simulation writes nothing
}

TEST(Cli, SynthModelsOfEachArchitectureOpenAndAreDeterministic) {
  test::TempDir d;
  for (const char* arch : {"llama", "qwen2", "exaone4"}) {
    const std::string a = d / (std::string(arch) + "-a"), b = d / (std::string(arch) + "-b");
    auto r = run_cli({"synth", "--arch", arch, "--params", "5M", a});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_EQ(run_cli({"synth", "--arch", arch, "--params", "5M", b}).exit_code, 0);
    EXPECT_EQ(test::read_bytes(a + "/model.safetensors"), test::read_bytes(b + "/model.safetensors")) << arch;
    auto inspect = run_cli({"inspect", a, "-o", "json"});
    ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
    const json j = json::parse(inspect.out);
    EXPECT_EQ(j["model_type"], arch);
    EXPECT_GT(j["parameters"].get<uint64_t>(), 4'000'000u);
    EXPECT_LT(j["parameters"].get<uint64_t>(), 6'000'000u);
  }
  EXPECT_EQ(run_cli({"synth", "--params", "lots", d / "x"}).exit_code, 2);
  EXPECT_EQ(run_cli({"synth", "--arch", "gpt2", d / "y"}).exit_code, 2);
}

TEST(Cli, LocalJobOnASyntheticExaoneModel) {
  test::TempDir d;
  ASSERT_EQ(run_cli({"synth", "--arch", "exaone4", "--params", "5M", d / "exaone"}).exit_code, 0);
  test::write_text(d / "job.yaml", "name: ex\nmodel: " + (d / "exaone") + "\noutput: " + (d / "out") +
                                       "\nprune: {method: magnitude, scope: '2:4'}\n");
  auto r = run_cli({"local", d / "job.yaml", "--workers", "2", "--state-dir", d / "state"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto v = run_cli({"verify", d / "out", "--against", d / "exaone", "-o", "json"});
  ASSERT_EQ(v.exit_code, 0) << v.out << v.err;
  const json j = json::parse(v.out);
  EXPECT_EQ(j["architecture"], "Exaone4ForCausalLM");
  for (const auto& t : j["tensors"])
    if (t["quantized"] == true) EXPECT_GE(t["zero_fraction"].get<double>(), 0.5) << t["name"];
}

}  // namespace
}  // namespace sp

namespace sp {
namespace {

// `eval --choices`: the stories task from the repo's script, on the original and on an NF4
// output (its folder carries tokenizer.model); errors exit 2 naming the problem.
TEST(Cli, EvalChoicesOnTheStoriesTask) {
  test::TempDir d;
  ASSERT_EQ(std::system(("python3 " + std::string(SP_PROJECT_DIR) + "/scripts/make-stories-choices.py " +
                         test::fixture("stories260k/text/eval.txt") + " > " + (d / "c.jsonl"))
                            .c_str()),
            0);
  auto orig = test::run_cli({"eval", test::fixture("stories260k/hf-bf16"), "--choices", d / "c.jsonl", "-o", "json"});
  ASSERT_EQ(orig.exit_code, 0) << orig.err;
  const auto o = nlohmann::json::parse(orig.out);
  EXPECT_EQ(o["items"], 101);
  EXPECT_DOUBLE_EQ(o["acc"].get<double>(), o["correct"].get<double>() / 101);
  EXPECT_GT(o["acc_norm"].get<double>(), 0.25 + 3 * o["acc_norm_stderr"].get<double>());
  ASSERT_EQ(test::run_cli({"compress", test::fixture("stories260k/hf-bf16"), d / "nf4"}).exit_code, 0);
  auto nf4 = test::run_cli({"eval", d / "nf4", "--choices", d / "c.jsonl", "--samples", "40", "-o", "json"});
  ASSERT_EQ(nf4.exit_code, 0) << nf4.err;
  EXPECT_EQ(nlohmann::json::parse(nf4.out)["items"], 40);
  EXPECT_EQ(nlohmann::json::parse(nf4.out)["quantized"], true);
  auto table = test::run_cli({"eval", test::fixture("stories260k/hf-bf16"), "--choices", d / "c.jsonl"});
  EXPECT_NE(table.out.find("accuracy     "), std::string::npos) << table.out;

  auto both = test::run_cli({"eval", d / "nf4", "--choices", d / "c.jsonl", "--ids", d / "c.jsonl"});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("one of them"), std::string::npos) << both.err;
  test::write_text(d / "bad.jsonl", "{\"context\": \"x\", \"choices\": [\"a\", \"b\"], \"answer\": 5}\n");
  auto bad = test::run_cli({"eval", d / "nf4", "--choices", d / "bad.jsonl"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("line 1: 'answer'"), std::string::npos) << bad.err;
  auto no_tok = test::run_cli({"eval", d / "nf4", "--choices", d / "c.jsonl", "--tokenizer", d / "missing.model"});
  EXPECT_NE(no_tok.exit_code, 0);
  EXPECT_NE(no_tok.err.find("missing.model"), std::string::npos) << no_tok.err;
}

}  // namespace
}  // namespace sp
