#include "formats/model_config.h"

#include <filesystem>

#include "common/file_util.h"
#include "fmt/format.h"

namespace sp {
namespace {

using ojson = nlohmann::ordered_json;

struct ArchRow {
  Arch arch;
  std::string_view class_name;
  std::string_view model_type;
};
constexpr ArchRow kArchs[] = {
    {Arch::kLlama, "LlamaForCausalLM", "llama"},
    {Arch::kQwen2, "Qwen2ForCausalLM", "qwen2"},
    {Arch::kExaone4, "Exaone4ForCausalLM", "exaone4"},
};

// The largest value each size key may take: far above any released model (EXAONE-4.0-32B:
// 64 layers, hidden 5120, FFN 27392, vocab 102400), and low enough that nothing sized by
// them can exhaust memory before the weights are checked against them.
struct SizeLimit {
  const char* key;
  int64_t max;
};
constexpr SizeLimit kSizeLimits[] = {
    {"num_hidden_layers", 4096},     {"hidden_size", 1 << 20},   {"intermediate_size", 1 << 22},
    {"num_attention_heads", 1 << 14}, {"num_key_value_heads", 1 << 14}, {"head_dim", 1 << 14},
    {"vocab_size", 1 << 24},         {"sliding_window", int64_t{1} << 40}, {"max_window_layers", int64_t{1} << 40},
};

class Reader {
 public:
  Reader(const ojson& j, std::string_view label) : j_(j), label_(label) {}

  absl::Status error(const std::string& msg) const {
    return absl::InvalidArgumentError(fmt::format("{}: {}", label_, msg));
  }

  // A positive integer no larger than the key's limit in kSizeLimits.
  absl::StatusOr<int64_t> positive_int(const char* key) const {
    if (!j_.contains(key)) return error(fmt::format("missing key '{}'", key));
    return positive_int_value(key, j_[key]);
  }
  absl::StatusOr<int64_t> positive_int_or(const char* key, int64_t dflt) const {
    if (!j_.contains(key) || j_[key].is_null()) return dflt;
    return positive_int_value(key, j_[key]);
  }
  absl::StatusOr<bool> boolean_or(const char* key, bool dflt) const {
    if (!j_.contains(key) || j_[key].is_null()) return dflt;
    if (!j_[key].is_boolean()) return error(fmt::format("'{}' must be true or false", key));
    return j_[key].get<bool>();
  }
  absl::StatusOr<double> number_or(const char* key, double dflt) const {
    if (!j_.contains(key) || j_[key].is_null()) return dflt;
    if (!j_[key].is_number()) return error(fmt::format("'{}' must be a number", key));
    return j_[key].get<double>();
  }

 private:
  absl::StatusOr<int64_t> positive_int_value(const char* key, const ojson& v) const {
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX) || v.get<int64_t>() <= 0)
      return error(fmt::format("'{}' must be a positive integer, got {}", key, v.dump()));
    const int64_t x = v.get<int64_t>();
    for (const auto& l : kSizeLimits)
      if (std::string_view(l.key) == key && x > l.max)
        return error(fmt::format("'{}' is {}, more than shardpress supports ({}): is config.json right?", key, x,
                                 l.max));
    return x;
  }
  const ojson& j_;
  std::string_view label_;
};

absl::StatusOr<std::vector<AttentionKind>> explicit_layer_types(const ojson& j, int64_t n,
                                                                const Reader& r) {
  const ojson& lt = j["layer_types"];
  if (!lt.is_array() || static_cast<int64_t>(lt.size()) != n)
    return r.error(fmt::format("'layer_types' must list one entry per layer ({})", n));
  std::vector<AttentionKind> out;
  for (const auto& v : lt) {
    const std::string s = v.is_string() ? v.get<std::string>() : "";
    if (s == "full_attention") out.push_back(AttentionKind::kFull);
    else if (s == "sliding_attention") out.push_back(AttentionKind::kSliding);
    else
      return r.error(fmt::format("'layer_types' entry {} is not 'full_attention' or 'sliding_attention'",
                                 v.dump()));
  }
  return out;
}

// architectures.md §4.2.
absl::StatusOr<std::vector<AttentionKind>> exaone4_layer_types(const ojson& j, int64_t n,
                                                               const Reader& r) {
  if (j.contains("layer_types") && !j["layer_types"].is_null()) return explicit_layer_types(j, n, r);
  std::vector<AttentionKind> out(static_cast<size_t>(n), AttentionKind::kFull);
  if (!j.contains("sliding_window") || j["sliding_window"].is_null()) return out;
  const ojson pattern = j.contains("sliding_window_pattern") ? j["sliding_window_pattern"] : ojson(4);
  if (pattern.is_number_integer() && pattern.get<int64_t>() > 0) {
    const int64_t p = pattern.get<int64_t>();
    for (int64_t i = 0; i < n; ++i)
      out[static_cast<size_t>(i)] = (i + 1) % p == 0 ? AttentionKind::kFull : AttentionKind::kSliding;
  } else if (pattern.is_string() && !pattern.get<std::string>().empty()) {
    const std::string p = pattern.get<std::string>();
    for (int64_t i = 0; i < n; ++i)
      out[static_cast<size_t>(i)] =
          p[static_cast<size_t>(i) % p.size()] == 'L' ? AttentionKind::kSliding : AttentionKind::kFull;
  } else {
    return r.error("'sliding_window_pattern' must be a positive integer or a string like \"LLLG\"");
  }
  return out;
}

}  // namespace

std::string supported_architectures() {
  std::string s;
  for (const auto& a : kArchs) {
    if (!s.empty()) s += ", ";
    s += fmt::format("{} ({})", a.class_name, a.model_type);
  }
  return s;
}

std::string_view arch_class_name(Arch a) {
  for (const auto& row : kArchs)
    if (row.arch == a) return row.class_name;
  return "?";
}

absl::StatusOr<ModelConfig> parse_model_config(std::string_view text, std::string_view label) {
  ojson j;
  try {
    j = ojson::parse(text);
  } catch (const ojson::exception& e) {
    return absl::InvalidArgumentError(fmt::format("{}: not valid JSON: {}", label, e.what()));
  }
  Reader r(j, label);
  if (!j.is_object()) return r.error("must be a JSON object");
  if (j.contains("quantization_config"))
    return r.error("the checkpoint is already quantized ('quantization_config' is present); "
                   "give the original unquantized model");

  ModelConfig c;
  std::string arch_name;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    arch_name = j["architectures"][0].get<std::string>();
  if (j.contains("model_type") && j["model_type"].is_string())
    c.model_type = j["model_type"].get<std::string>();
  const ArchRow* found = nullptr;
  for (const auto& a : kArchs)
    if ((!arch_name.empty() && a.class_name == arch_name) ||
        (arch_name.empty() && a.model_type == c.model_type))
      found = &a;
  if (!found)
    return r.error(fmt::format("unsupported architecture '{}' (model_type '{}'); supported: {}",
                               arch_name, c.model_type, supported_architectures()));
  c.arch = found->arch;
  if (c.model_type.empty()) c.model_type = std::string(found->model_type);

  SP_ASSIGN_OR_RETURN(c.hidden_size, r.positive_int("hidden_size"));
  SP_ASSIGN_OR_RETURN(c.intermediate_size, r.positive_int("intermediate_size"));
  SP_ASSIGN_OR_RETURN(c.num_layers, r.positive_int("num_hidden_layers"));
  SP_ASSIGN_OR_RETURN(c.num_heads, r.positive_int("num_attention_heads"));
  SP_ASSIGN_OR_RETURN(c.num_kv_heads, r.positive_int_or("num_key_value_heads", c.num_heads));
  SP_ASSIGN_OR_RETURN(c.vocab_size, r.positive_int("vocab_size"));
  if (c.num_kv_heads > c.num_heads)
    return r.error(fmt::format("num_key_value_heads {} is more than num_attention_heads {}", c.num_kv_heads,
                               c.num_heads));
  if (c.num_heads % c.num_kv_heads != 0)
    return r.error(fmt::format("num_attention_heads {} is not a multiple of num_key_value_heads {}",
                               c.num_heads, c.num_kv_heads));
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    SP_ASSIGN_OR_RETURN(c.head_dim, r.positive_int("head_dim"));
  } else {
    if (c.hidden_size % c.num_heads != 0)
      return r.error(fmt::format("hidden_size {} is not a multiple of num_attention_heads {} and no "
                                 "head_dim is given", c.hidden_size, c.num_heads));
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (j.contains("hidden_act") && j["hidden_act"] != "silu")
    return r.error(fmt::format("hidden_act {} is not supported (only \"silu\")", j["hidden_act"].dump()));

  SP_ASSIGN_OR_RETURN(c.tie_word_embeddings, r.boolean_or("tie_word_embeddings", false));
  SP_ASSIGN_OR_RETURN(c.rms_norm_eps,
                      r.number_or("rms_norm_eps", c.arch == Arch::kExaone4 ? 1e-5 : 1e-6));
  SP_ASSIGN_OR_RETURN(c.rope_theta, r.number_or("rope_theta", 10000.0));
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    if (!j["rope_scaling"].is_object()) return r.error("'rope_scaling' must be an object or null");
    c.rope_scaling = nlohmann::json::parse(j["rope_scaling"].dump());
  }
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    const auto& rp = j["rope_parameters"];
    if (rp.contains("rope_theta") && rp["rope_theta"].is_number()) c.rope_theta = rp["rope_theta"].get<double>();
    c.rope_scaling = nlohmann::json::parse(rp.dump());
  }
  if (c.arch == Arch::kLlama) {
    SP_ASSIGN_OR_RETURN(c.attention_bias, r.boolean_or("attention_bias", false));
    SP_ASSIGN_OR_RETURN(c.mlp_bias, r.boolean_or("mlp_bias", false));
  }
  if (j.contains("sliding_window") && !j["sliding_window"].is_null()) {
    SP_ASSIGN_OR_RETURN(c.sliding_window, r.positive_int("sliding_window"));
  }

  switch (c.arch) {
    case Arch::kLlama:
      if (j.contains("layer_types") && !j["layer_types"].is_null()) {
        SP_ASSIGN_OR_RETURN(c.layer_types, explicit_layer_types(j, c.num_layers, r));
      } else {
        c.layer_types.assign(static_cast<size_t>(c.num_layers), AttentionKind::kFull);
      }
      break;
    case Arch::kQwen2: {
      if (j.contains("layer_types") && !j["layer_types"].is_null()) {
        SP_ASSIGN_OR_RETURN(c.layer_types, explicit_layer_types(j, c.num_layers, r));
        break;
      }
      SP_ASSIGN_OR_RETURN(const bool use_sw, r.boolean_or("use_sliding_window", false));
      SP_ASSIGN_OR_RETURN(const int64_t mwl, r.positive_int_or("max_window_layers", c.num_layers));
      for (int64_t i = 0; i < c.num_layers; ++i)
        c.layer_types.push_back(use_sw && i >= mwl ? AttentionKind::kSliding : AttentionKind::kFull);
      break;
    }
    case Arch::kExaone4:
      SP_ASSIGN_OR_RETURN(c.layer_types, exaone4_layer_types(j, c.num_layers, r));
      break;
  }

  for (const char* key : {"torch_dtype", "dtype"}) {
    if (j.contains(key) && j[key].is_string()) {
      const auto dt = dtype_from_torch_name(j[key].get<std::string>());
      if (!dt)
        return r.error(fmt::format("'{}' is {}; expected bfloat16, float16 or float32", key,
                                   j[key].dump()));
      c.torch_dtype = dt;
    }
  }
  c.raw = std::move(j);
  return c;
}

absl::StatusOr<ModelConfig> load_model_config(const std::string& dir, const std::string& root) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::symlink_status(path, ec)))
    SP_RETURN_IF_ERROR(resolve_in(dir, "config.json", root, "config.json").status());
  auto text = read_file(path);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status()))
      return absl::NotFoundError(fmt::format("{}: no config.json (is this a Hugging Face model folder?)", dir));
    return text.status();
  }
  return parse_model_config(*text, path);
}

}  // namespace sp
