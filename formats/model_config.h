// A Hugging Face config.json for the supported decoder families: Llama, Qwen2 and
// EXAONE 4.0 (see shared/docs/architectures.md §5 for the keys read here).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/confined_path.h"
#include "common/dtype.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace sp {

enum class Arch { kLlama, kQwen2, kExaone4 };

// "LlamaForCausalLM, Qwen2ForCausalLM, Exaone4ForCausalLM" — for error messages.
std::string supported_architectures();
std::string_view arch_class_name(Arch a);

enum class AttentionKind { kFull, kSliding };

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string model_type;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  bool tie_word_embeddings = false;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  nlohmann::json rope_scaling;  // null when absent
  bool attention_bias = false;  // q/k/v/o biases (Qwen2: q/k/v always)
  bool mlp_bias = false;
  std::optional<int64_t> sliding_window;
  std::vector<AttentionKind> layer_types;  // one per layer
  std::optional<DType> torch_dtype;        // `torch_dtype` or `dtype`, when given

  // The file as read, key order kept, for copying into an output config.json.
  nlohmann::ordered_json raw;
};

// Parses config.json text. `label` (the path) starts every error message.
// INVALID_ARGUMENT for an unsupported architecture (listing the supported ones), a
// missing/ill-typed key, inconsistent sizes, or a checkpoint that is already quantized.
absl::StatusOr<ModelConfig> parse_model_config(std::string_view text, std::string_view label);

// Reads DIR/config.json, which must resolve inside `root` (checked before it is opened).
absl::StatusOr<ModelConfig> load_model_config(const std::string& dir, const std::string& root = kAnyRoot);

}  // namespace sp
