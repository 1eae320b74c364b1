#include "checkpoint/gguf_model.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "fmt/format.h"
#include "formats/model_config.h"
#include "nlohmann/json.hpp"
#include "ops/ggml_ftypes.h"
#include "ops/gguf_plan.h"
#include "ops/ggml_quants.h"

namespace sp {
namespace {

bool known_type(uint32_t type) {
  for (const auto& tr : ggml_types())
    if (static_cast<uint32_t>(tr.type) == type) return true;
  return false;
}

uint64_t numel(const std::vector<int64_t>& ne) {
  uint64_t n = 1;
  for (int64_t d : ne) n *= static_cast<uint64_t>(d);
  return n;
}

// config.json text for the model a GGUF holds (the keys convert_hf_to_gguf.py read, §2.2).
absl::StatusOr<std::string> config_text(const GgufFile& g, const std::string& label) {
  auto str = [&](const std::string& k) -> std::optional<std::string> {
    auto it = g.strings.find(k);
    return it == g.strings.end() ? std::nullopt : std::optional(it->second);
  };
  const auto arch = str("general.architecture");
  if (!arch) return absl::InvalidArgumentError(fmt::format("{}: no general.architecture", label));
  if (auto own = str(kGgufConfigKey)) return *own;  // a shardpress file says it whole (exaone4, Llama-3 RoPE)
  if (*arch != "llama" && *arch != "qwen2")
    return absl::UnimplementedError(
        fmt::format("{}: architecture '{}'; shardpress reads GGUF files of llama and qwen2 models", label, *arch));
  auto u = [&](const std::string& k) -> absl::StatusOr<uint64_t> {
    auto it = g.integers.find(*arch + "." + k);
    if (it == g.integers.end()) return absl::InvalidArgumentError(fmt::format("{}: no {}.{}", label, *arch, k));
    return it->second;
  };
  nlohmann::ordered_json c;
  c["architectures"] = {*arch == "llama" ? "LlamaForCausalLM" : "Qwen2ForCausalLM"};
  c["model_type"] = *arch;
  SP_ASSIGN_OR_RETURN(c["hidden_size"], u("embedding_length"));
  SP_ASSIGN_OR_RETURN(c["intermediate_size"], u("feed_forward_length"));
  SP_ASSIGN_OR_RETURN(c["num_hidden_layers"], u("block_count"));
  SP_ASSIGN_OR_RETURN(c["num_attention_heads"], u("attention.head_count"));
  const auto kv = u("attention.head_count_kv");
  c["num_key_value_heads"] = kv.ok() ? *kv : c["num_attention_heads"].get<uint64_t>();
  if (auto k = u("attention.key_length"); k.ok()) c["head_dim"] = *k;
  if (auto ctx = u("context_length"); ctx.ok()) c["max_position_embeddings"] = *ctx;
  const GgufTensorEntry* embd = g.find("token_embd.weight");
  if (auto v = u("vocab_size"); v.ok()) c["vocab_size"] = *v;
  else if (embd && embd->ne.size() == 2) c["vocab_size"] = embd->ne[1];
  else if (auto it = g.array_lengths.find("tokenizer.ggml.tokens"); it != g.array_lengths.end()) c["vocab_size"] = it->second;
  auto f = [&](const std::string& k, double dflt) {
    auto it = g.floats.find(*arch + "." + k);
    return it == g.floats.end() ? dflt : it->second;
  };
  c["rms_norm_eps"] = f("attention.layer_norm_rms_epsilon", 1e-6);
  c["rope_theta"] = f("rope.freq_base", 10000.0);
  if (str(*arch + ".rope.scaling.type") == "linear")
    c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", f("rope.scaling.factor", 1.0)}};
  c["tie_word_embeddings"] = g.find("output.weight") == nullptr;
  for (const char* t : {"bos", "eos"})
    if (auto it = g.integers.find(fmt::format("tokenizer.ggml.{}_token_id", t)); it != g.integers.end())
      c[fmt::format("{}_token_id", t)] = it->second;
  c["hidden_act"] = "silu";
  c["torch_dtype"] = "float32";
  return c.dump(2);
}

}  // namespace

bool is_gguf_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

absl::StatusOr<std::unique_ptr<GgufModel>> GgufModel::open(const std::string& path) {
  std::unique_ptr<GgufModel> m(new GgufModel());
  SP_ASSIGN_OR_RETURN(m->file_, read_gguf(path));
  SP_ASSIGN_OR_RETURN(const std::string text, config_text(m->file_, path));
  SP_ASSIGN_OR_RETURN(ModelConfig config, parse_model_config(text, path + " (its metadata as config.json)"));
  std::map<std::string, TensorShape> actual;
  std::vector<std::string> problems;
  std::map<std::string, bool> used;
  const uint64_t size = m->file_.file.bytes().size();
  for (const ExpectedTensor& e : expected_tensors(config)) {
    const auto name = gguf_tensor_name(config.arch, e.role, e.layer);
    if (!name) continue;
    const GgufTensorEntry* g = m->file_.find(*name);
    if (!g) {
      if (!e.optional) problems.push_back(fmt::format("{} ({}) is missing", *name, e.name));
      continue;
    }
    used[*name] = true;
    if (!known_type(g->type)) {
      problems.push_back(fmt::format("{}: ggml type {} is not one shardpress decodes ({})", *name, g->type, ggml_type_names()));
      continue;
    }
    const auto& tr = ggml_traits(static_cast<GgmlType>(g->type));
    const std::vector<int64_t> shape(g->ne.rbegin(), g->ne.rend());
    if (g->ne.empty() || g->ne[0] % tr.block != 0) {
      problems.push_back(fmt::format("{}: {} columns are not whole {} blocks", *name, g->ne.empty() ? 0 : g->ne[0], tr.name));
      continue;
    }
    if (g->offset + ggml_nbytes(tr.type, static_cast<int64_t>(numel(g->ne))) > size) {
      problems.push_back(fmt::format("{}: its data runs past the end of the file", *name));
      continue;
    }
    actual[e.name] = TensorShape{DType::kF32, shape};
    m->entries_[e.name] = g;
  }
  for (const auto& g : gguf_generated_tensors(config)) used[g.plan.name] = true;  // made from the config
  for (const auto& t : m->file_.tensors)
    if (!used.count(t.name)) problems.push_back(fmt::format("{}: not a tensor of a {} model", t.name, config.model_type));
  if (!problems.empty()) {
    std::string list;
    for (size_t i = 0; i < problems.size() && i < 8; ++i) list += "\n  - " + problems[i];
    if (problems.size() > 8) list += fmt::format("\n  ... and {} more", problems.size() - 8);
    return absl::InvalidArgumentError(fmt::format("{}: not a GGUF file of the model its metadata describes:{}", path, list));
  }
  SP_ASSIGN_OR_RETURN(m->desc_, describe_model(config, actual, path));
  return m;
}

const GgufTensorEntry& GgufModel::entry(const std::string& name) const { return *entries_.at(name); }

std::string GgufModel::file_type_name() const {
  auto it = file_.integers.find("general.file_type");
  if (it == file_.integers.end()) return "unknown";
  for (const auto& f : gguf_ftypes())
    if (f.file_type == it->second && (f.mix || (f.file_type != 15 && f.file_type != 17))) return std::string(f.name);
  return fmt::format("file type {}", it->second);
}

std::span<const uint8_t> GgufModel::bytes(const std::string& name) const {
  const GgufTensorEntry& e = entry(name);
  return file_.file.bytes().subspan(e.offset, ggml_nbytes(static_cast<GgmlType>(e.type), static_cast<int64_t>(numel(e.ne))));
}

std::vector<float> GgufModel::decode(const std::string& name) const {
  const GgufTensorEntry& e = entry(name);
  std::vector<float> x = ggml_dequantize(static_cast<GgmlType>(e.type), bytes(name), static_cast<int64_t>(numel(e.ne)));
  const ModelTensor* t = desc_.find(name);
  if (auto heads = qk_permute_heads(desc_.config, t->role)) {
    const int64_t rows = t->stored.shape[0];
    const int64_t cols = t->stored.shape.size() == 2 ? t->stored.shape[1] : 1;
    x = unpermute_qk_rows(x, rows, cols, *heads);
  }
  return x;
}

}  // namespace sp
