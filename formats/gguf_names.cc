#include "formats/gguf_names.h"

#include <algorithm>

#include "fmt/format.h"

namespace sp {

std::string_view gguf_arch_name(Arch arch) {
  switch (arch) {
    case Arch::kLlama: return "llama";
    case Arch::kQwen2: return "qwen2";
    case Arch::kExaone4: return "exaone4";
  }
  return "unknown";
}

std::optional<std::string> gguf_tensor_name(Arch arch, TensorRole role, int64_t layer) {
  const std::string blk = fmt::format("blk.{}.", layer);
  if (arch == Arch::kExaone4) {
    switch (role) {
      case TensorRole::kPostAttentionNorm: return blk + "post_attention_norm.weight";
      case TensorRole::kPostFeedforwardNorm: return blk + "post_ffw_norm.weight";
      case TensorRole::kQNorm: return blk + "attn_q_norm.weight";
      case TensorRole::kKNorm: return blk + "attn_k_norm.weight";
      default: break;
    }
  }
  switch (role) {
    case TensorRole::kEmbedding: return "token_embd.weight";
    case TensorRole::kFinalNorm: return "output_norm.weight";
    case TensorRole::kLmHead: return "output.weight";
    case TensorRole::kInputNorm: return blk + "attn_norm.weight";
    case TensorRole::kPostAttentionNorm: return blk + "ffn_norm.weight";
    case TensorRole::kQProj: return blk + "attn_q.weight";
    case TensorRole::kKProj: return blk + "attn_k.weight";
    case TensorRole::kVProj: return blk + "attn_v.weight";
    case TensorRole::kOProj: return blk + "attn_output.weight";
    case TensorRole::kGateProj: return blk + "ffn_gate.weight";
    case TensorRole::kUpProj: return blk + "ffn_up.weight";
    case TensorRole::kDownProj: return blk + "ffn_down.weight";
    case TensorRole::kQBias: return blk + "attn_q.bias";
    case TensorRole::kKBias: return blk + "attn_k.bias";
    case TensorRole::kVBias: return blk + "attn_v.bias";
    default: return std::nullopt;
  }
}

namespace {

// Within each head, Hugging Face rows i and i + hd/2 become rows 2i and 2i + 1 (`to_gguf`),
// or back.
std::vector<float> move_qk_rows(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t heads, bool to_gguf) {
  std::vector<float> out(w.size());
  const int64_t hd = rows / heads;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < hd / 2; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t gguf = h * hd + 2 * i + j, hf = h * hd + j * (hd / 2) + i;
        const int64_t from = to_gguf ? hf : gguf, to = to_gguf ? gguf : hf;
        std::copy_n(w.begin() + from * cols, cols, out.begin() + to * cols);
      }
  return out;
}

}  // namespace

std::vector<float> permute_qk_rows(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t heads) {
  return move_qk_rows(w, rows, cols, heads, true);
}

std::vector<float> unpermute_qk_rows(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t heads) {
  return move_qk_rows(w, rows, cols, heads, false);
}

std::optional<int64_t> qk_permute_heads(const ModelConfig& config, TensorRole role) {
  if (config.arch != Arch::kLlama) return std::nullopt;
  if (role == TensorRole::kQProj || role == TensorRole::kQBias) return config.num_heads;
  if (role == TensorRole::kKProj || role == TensorRole::kKBias) return config.num_kv_heads;
  return std::nullopt;
}

}  // namespace sp
