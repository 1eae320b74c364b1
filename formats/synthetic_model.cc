#include "formats/synthetic_model.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "common/file_util.h"
#include "common/float_convert.h"
#include "fmt/format.h"
#include "formats/model_layout.h"
#include "formats/safetensors_writer.h"
#include "nlohmann/json.hpp"

namespace sp {
namespace {

namespace fs = std::filesystem;

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t name_seed(const std::string& name, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Irwin-Hall(4) from one 64-bit draw: close to N(0, 1), cheap and deterministic.
float normalish(uint64_t& s) {
  const uint64_t r = splitmix64(s);
  const float sum = static_cast<float>((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48)) / 65536.0f;
  return (sum - 2.0f) * 1.7320508f;
}

struct Dims {
  int64_t hidden, heads, kv, head_dim, inter, vocab, layers;
};

uint64_t layer_params(const Dims& d) {
  const uint64_t attn = static_cast<uint64_t>(d.hidden) * (2 * d.heads * d.head_dim + 2 * d.kv * d.head_dim);
  return attn + 3ull * d.hidden * d.inter + 2ull * d.hidden;
}

Dims choose_dims(uint64_t params) {
  static const int64_t kHidden[] = {64, 128, 256, 512, 768, 1024, 1536, 2048, 2560, 3072, 4096, 5120, 8192};
  Dims d{};
  for (int64_t h : kHidden) {
    d.hidden = h;
    d.head_dim = h <= 1024 ? 64 : 128;
    if (h < 128) d.head_dim = 8;
    d.heads = h / d.head_dim;
    d.kv = std::max<int64_t>(1, d.heads / 4);
    d.inter = ((h * 8 / 3) + 63) / 64 * 64;
    d.vocab = params >= 50'000'000 ? 32000 : 512;
    const double rest = static_cast<double>(params) - 2.0 * d.vocab * h;
    d.layers = std::max<int64_t>(2, static_cast<int64_t>(std::llround(rest / layer_params(d))));
    if (d.layers <= 32) break;
  }
  return d;
}

}  // namespace

absl::StatusOr<uint64_t> parse_param_count(std::string_view text) {
  double v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || v <= 0) return absl::InvalidArgumentError(fmt::format("'{}' is not a parameter count (e.g. 1B, 125M)", text));
  const std::string_view unit(p, static_cast<size_t>(text.data() + text.size() - p));
  double mult = 1;
  if (unit == "K" || unit == "k") mult = 1e3;
  else if (unit == "M" || unit == "m") mult = 1e6;
  else if (unit == "B" || unit == "b" || unit == "G") mult = 1e9;
  else if (!unit.empty()) return absl::InvalidArgumentError(fmt::format("'{}': use K, M or B", text));
  return static_cast<uint64_t>(v * mult);
}

absl::StatusOr<SynthSummary> write_synthetic_model(const std::string& out_dir, const SynthOptions& o) {
  std::error_code ec;
  if (fs::exists(out_dir, ec)) return absl::FailedPreconditionError(fmt::format("{} already exists", out_dir));
  if (!is_quantizable_float(o.dtype)) return absl::InvalidArgumentError("dtype must be F32, F16 or BF16");
  Dims d = choose_dims(o.params);
  if (o.hidden > 0) {
    d.hidden = o.hidden;
    d.head_dim = o.hidden < 128 ? 8 : 64;
    d.heads = o.hidden / d.head_dim;
    d.kv = std::max<int64_t>(1, d.heads / 4);
  }
  if (o.intermediate > 0) d.inter = o.intermediate;
  if (o.layers > 0) d.layers = o.layers;
  nlohmann::ordered_json cfg;
  const char* cls = o.arch == Arch::kLlama ? "LlamaForCausalLM" : o.arch == Arch::kQwen2 ? "Qwen2ForCausalLM" : "Exaone4ForCausalLM";
  const char* type = o.arch == Arch::kLlama ? "llama" : o.arch == Arch::kQwen2 ? "qwen2" : "exaone4";
  cfg["architectures"] = {cls};
  cfg["model_type"] = type;
  cfg["hidden_size"] = d.hidden;
  cfg["intermediate_size"] = d.inter;
  cfg["num_hidden_layers"] = d.layers;
  cfg["num_attention_heads"] = d.heads;
  cfg["num_key_value_heads"] = d.kv;
  cfg["head_dim"] = d.head_dim;
  cfg["vocab_size"] = d.vocab;
  cfg["max_position_embeddings"] = 4096;
  cfg["hidden_act"] = "silu";
  cfg["rms_norm_eps"] = 1e-5;
  cfg["rope_theta"] = 10000.0;
  cfg["tie_word_embeddings"] = false;
  if (o.arch == Arch::kExaone4) {
    cfg["sliding_window"] = 4096;
    cfg["sliding_window_pattern"] = "LLLG";
  }
  cfg["torch_dtype"] = std::string(*torch_dtype_name(o.dtype));
  cfg["shardpress_synthetic"] = {{"seed", o.seed}, {"requested_params", o.params}};
  SP_ASSIGN_OR_RETURN(ModelConfig config, parse_model_config(cfg.dump(), "synthetic config"));

  const auto expected = expected_tensors(config);
  std::vector<TensorGroup> groups;
  for (const auto& e : expected)
    if (!e.optional) groups.push_back({TensorSpec{e.name, o.dtype, e.shape}});
  fs::create_directories(out_dir, ec);
  if (ec) return absl::UnavailableError(fmt::format("{}: {}", out_dir, ec.message()));
  SafetensorsWriter::Options wo;
  wo.max_shard_bytes = o.max_shard_bytes;
  SP_ASSIGN_OR_RETURN(auto writer, SafetensorsWriter::create(out_dir, groups, wo));
  SynthSummary sum{0, 0, d.layers, d.hidden, d.inter, d.vocab};
  std::vector<float> values;
  for (const auto& e : expected) {
    if (e.optional) continue;
    uint64_t n = 1;
    for (int64_t x : e.shape) n *= static_cast<uint64_t>(x);
    values.resize(n);
    uint64_t s = name_seed(e.name, o.seed);
    const bool norm = e.shape.size() == 1 && !role_name(e.role).ends_with("bias");
    for (auto& v : values) v = norm ? 1.0f + 0.05f * normalish(s) : 0.02f * normalish(s);
    const auto bytes = from_float32(values, o.dtype);
    SP_RETURN_IF_ERROR(writer->write(e.name, bytes));
    sum.params += n;
    sum.bytes += bytes.size();
  }
  SP_RETURN_IF_ERROR(writer->finish());
  SP_RETURN_IF_ERROR(write_file_atomic((fs::path(out_dir) / "config.json").string(), cfg.dump(2) + "\n"));
  return sum;
}

}  // namespace sp
