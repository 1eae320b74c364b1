#include "formats/model_layout.h"

#include <algorithm>
#include <charconv>
#include <set>

#include "fmt/format.h"
#include "fmt/ranges.h"

namespace sp {
namespace {

struct LayerEntry {
  TensorRole role;
  std::string_view suffix;
};

// Per-layer tensors in the order they are listed (and written).
constexpr LayerEntry kLayerEntries[] = {
    {TensorRole::kInputNorm, "input_layernorm.weight"},
    {TensorRole::kQProj, "self_attn.q_proj.weight"},
    {TensorRole::kQBias, "self_attn.q_proj.bias"},
    {TensorRole::kKProj, "self_attn.k_proj.weight"},
    {TensorRole::kKBias, "self_attn.k_proj.bias"},
    {TensorRole::kVProj, "self_attn.v_proj.weight"},
    {TensorRole::kVBias, "self_attn.v_proj.bias"},
    {TensorRole::kOProj, "self_attn.o_proj.weight"},
    {TensorRole::kOBias, "self_attn.o_proj.bias"},
    {TensorRole::kQNorm, "self_attn.q_norm.weight"},
    {TensorRole::kKNorm, "self_attn.k_norm.weight"},
    {TensorRole::kPostAttentionNorm, "post_attention_layernorm.weight"},
    {TensorRole::kGateProj, "mlp.gate_proj.weight"},
    {TensorRole::kGateBias, "mlp.gate_proj.bias"},
    {TensorRole::kUpProj, "mlp.up_proj.weight"},
    {TensorRole::kUpBias, "mlp.up_proj.bias"},
    {TensorRole::kDownProj, "mlp.down_proj.weight"},
    {TensorRole::kDownBias, "mlp.down_proj.bias"},
    {TensorRole::kPostFeedforwardNorm, "post_feedforward_layernorm.weight"},
};

// Shape of a per-layer tensor under `c`, or empty if this architecture has no such tensor.
std::vector<int64_t> layer_shape(const ModelConfig& c, TensorRole role) {
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  const int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  const bool llama = c.arch == Arch::kLlama, qwen = c.arch == Arch::kQwen2,
             exaone = c.arch == Arch::kExaone4;
  const bool qkv_bias = (llama && c.attention_bias) || qwen;
  switch (role) {
    case TensorRole::kInputNorm: return exaone ? std::vector<int64_t>{} : std::vector<int64_t>{H};
    case TensorRole::kQProj: return {q, H};
    case TensorRole::kKProj: return {kv, H};
    case TensorRole::kVProj: return {kv, H};
    case TensorRole::kOProj: return {H, q};
    case TensorRole::kQBias: return qkv_bias ? std::vector<int64_t>{q} : std::vector<int64_t>{};
    case TensorRole::kKBias:
    case TensorRole::kVBias: return qkv_bias ? std::vector<int64_t>{kv} : std::vector<int64_t>{};
    case TensorRole::kOBias: return llama && c.attention_bias ? std::vector<int64_t>{H} : std::vector<int64_t>{};
    case TensorRole::kQNorm:
    case TensorRole::kKNorm: return exaone ? std::vector<int64_t>{c.head_dim} : std::vector<int64_t>{};
    case TensorRole::kPostAttentionNorm: return {H};
    case TensorRole::kGateProj:
    case TensorRole::kUpProj: return {I, H};
    case TensorRole::kDownProj: return {H, I};
    case TensorRole::kGateBias:
    case TensorRole::kUpBias: return llama && c.mlp_bias ? std::vector<int64_t>{I} : std::vector<int64_t>{};
    case TensorRole::kDownBias: return llama && c.mlp_bias ? std::vector<int64_t>{H} : std::vector<int64_t>{};
    case TensorRole::kPostFeedforwardNorm: return exaone ? std::vector<int64_t>{H} : std::vector<int64_t>{};
    default: return {};
  }
}

std::string shape_str(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

}  // namespace

std::string_view role_name(TensorRole r) {
  switch (r) {
    case TensorRole::kEmbedding: return "embedding";
    case TensorRole::kFinalNorm: return "final_norm";
    case TensorRole::kLmHead: return "lm_head";
    case TensorRole::kInputNorm: return "input_norm";
    case TensorRole::kPostAttentionNorm: return "post_attention_norm";
    case TensorRole::kPostFeedforwardNorm: return "post_feedforward_norm";
    case TensorRole::kQNorm: return "q_norm";
    case TensorRole::kKNorm: return "k_norm";
    case TensorRole::kQProj: return "q_proj";
    case TensorRole::kKProj: return "k_proj";
    case TensorRole::kVProj: return "v_proj";
    case TensorRole::kOProj: return "o_proj";
    case TensorRole::kGateProj: return "gate_proj";
    case TensorRole::kUpProj: return "up_proj";
    case TensorRole::kDownProj: return "down_proj";
    case TensorRole::kQBias: return "q_bias";
    case TensorRole::kKBias: return "k_bias";
    case TensorRole::kVBias: return "v_bias";
    case TensorRole::kOBias: return "o_bias";
    case TensorRole::kGateBias: return "gate_bias";
    case TensorRole::kUpBias: return "up_bias";
    case TensorRole::kDownBias: return "down_bias";
    case TensorRole::kRotaryInvFreq: return "rotary_inv_freq";
  }
  return "?";
}

std::optional<TensorRole> role_from_name(std::string_view name) {
  for (int r = 0; r <= static_cast<int>(TensorRole::kRotaryInvFreq); ++r)
    if (role_name(static_cast<TensorRole>(r)) == name) return static_cast<TensorRole>(r);
  return std::nullopt;
}

bool is_linear_weight(TensorRole r) {
  switch (r) {
    case TensorRole::kQProj: case TensorRole::kKProj: case TensorRole::kVProj:
    case TensorRole::kOProj: case TensorRole::kGateProj: case TensorRole::kUpProj:
    case TensorRole::kDownProj:
      return true;
    default:
      return false;
  }
}

uint64_t TensorShape::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

const ModelTensor* ModelDescription::find(std::string_view name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
  std::vector<ExpectedTensor> out;
  out.push_back({"model.embed_tokens.weight", TensorRole::kEmbedding, -1, {c.vocab_size, c.hidden_size}});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    for (const auto& e : kLayerEntries) {
      auto shape = layer_shape(c, e.role);
      if (shape.empty()) continue;
      out.push_back({fmt::format("model.layers.{}.{}", i, e.suffix), e.role, i, std::move(shape)});
    }
  }
  out.push_back({"model.norm.weight", TensorRole::kFinalNorm, -1, {c.hidden_size}});
  out.push_back({"lm_head.weight", TensorRole::kLmHead, -1, {c.vocab_size, c.hidden_size},
                 c.tie_word_embeddings});
  return out;
}

namespace {

// Decoder layers the files hold ("model.layers.<i>." prefixes), counted before anything
// sized by the config's num_hidden_layers is built.
size_t layers_in(const std::map<std::string, TensorShape>& actual) {
  constexpr std::string_view kPrefix = "model.layers.";
  std::set<uint64_t> layers;
  for (const auto& [name, _] : actual) {
    if (!name.starts_with(kPrefix)) continue;
    const char* b = name.data() + kPrefix.size();
    const char* e = name.data() + name.size();
    uint64_t i = 0;
    auto [p, ec] = std::from_chars(b, e, i);
    if (ec == std::errc() && p != b && p < e && *p == '.') layers.insert(i);
  }
  return layers.size();
}

}  // namespace

absl::StatusOr<ModelDescription> describe_model(const ModelConfig& config,
                                                const std::map<std::string, TensorShape>& actual,
                                                std::string_view label) {
  constexpr size_t kMaxListed = 12;
  if (const size_t held = layers_in(actual); static_cast<uint64_t>(config.num_layers) > held)
    return absl::InvalidArgumentError(fmt::format(
        "{}: config.json says num_hidden_layers is {}, but the weights hold {} decoder layer{}", label,
        config.num_layers, held, held == 1 ? "" : "s"));
  std::vector<std::string> problems;
  ModelDescription d;
  d.config = config;
  std::map<std::string, bool> used;
  for (const auto& [name, _] : actual) used[name] = false;

  for (const auto& e : expected_tensors(config)) {
    auto it = actual.find(e.name);
    if (it == actual.end()) {
      if (!e.optional) problems.push_back(fmt::format("missing tensor '{}' (expected shape {})", e.name, shape_str(e.shape)));
      continue;
    }
    used[e.name] = true;
    if (it->second.shape != e.shape) {
      problems.push_back(fmt::format("tensor '{}' has shape {}, expected {}", e.name,
                                     shape_str(it->second.shape), shape_str(e.shape)));
      continue;
    }
    if (!is_quantizable_float(it->second.dtype))
      problems.push_back(fmt::format("tensor '{}' is {}, expected F32, F16 or BF16", e.name,
                                     dtype_name(it->second.dtype)));
    d.tensors.push_back({e.name, e.role, e.layer, it->second});
  }
  for (const auto& [name, was_used] : used) {
    if (was_used) continue;
    if (name.starts_with("model.layers.") && name.ends_with(".self_attn.rotary_emb.inv_freq")) {
      d.ignored.push_back(name);
      continue;
    }
    problems.push_back(fmt::format("unexpected tensor '{}' for {}", name, arch_class_name(config.arch)));
  }
  if (!problems.empty()) {
    std::string msg = fmt::format("{}: the weights do not match config.json ({} problem{}):", label,
                                  problems.size(), problems.size() == 1 ? "" : "s");
    for (size_t i = 0; i < problems.size() && i < kMaxListed; ++i) msg += "\n  - " + problems[i];
    if (problems.size() > kMaxListed) msg += fmt::format("\n  - ... and {} more", problems.size() - kMaxListed);
    msg += fmt::format("\n  a {} layer has: ", arch_class_name(config.arch));
    std::vector<std::string_view> names;
    for (const auto& e : kLayerEntries)
      if (!layer_shape(config, e.role).empty()) names.push_back(e.suffix);
    msg += fmt::format("{}", fmt::join(names, ", "));
    return absl::InvalidArgumentError(msg);
  }

  // Shards: embed, one per layer, final norm, lm_head (when stored).
  auto shard_for = [&](const ModelTensor& t) -> ModelShard& {
    std::string id;
    ShardKind kind;
    switch (t.role) {
      case TensorRole::kEmbedding: id = "embed"; kind = ShardKind::kEmbedding; break;
      case TensorRole::kFinalNorm: id = "norm"; kind = ShardKind::kFinalNorm; break;
      case TensorRole::kLmHead: id = "lm_head"; kind = ShardKind::kLmHead; break;
      default: id = fmt::format("layer.{}", t.layer); kind = ShardKind::kLayer; break;
    }
    if (d.shards.empty() || d.shards.back().id != id) d.shards.push_back({id, kind, t.layer});
    return d.shards.back();
  };
  for (const auto& t : d.tensors) {
    ModelShard& s = shard_for(t);
    s.tensors.push_back(t.name);
    s.params += t.stored.numel();
    s.bytes += t.stored.nbytes();
    if (is_linear_weight(t.role)) {
      s.linear_params += t.stored.numel();
      s.linear_bytes += t.stored.nbytes();
      if (t.stored.numel() > s.largest_linear_numel) {
        s.largest_linear_numel = t.stored.numel();
        s.largest_linear_cols = t.stored.shape[1];
      }
    }
    d.params += t.stored.numel();
    d.bytes_by_dtype[t.stored.dtype] += t.stored.nbytes();
  }
  return d;
}

}  // namespace sp
