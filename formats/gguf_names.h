// Hugging Face tensors under llama.cpp's names (../shared/docs/gguf-format.md §3): the GGUF
// name of each tensor role, and Llama's Q/K row order (llama.cpp keeps each head's rotary
// pairs adjacent; Hugging Face keeps the halves apart). One place for the mapping, used by
// the export, the per-shard GGUF task and the reader.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "formats/model_config.h"
#include "formats/model_layout.h"

namespace sp {

// llama.cpp's name for the tensor of `role` in `layer` of an `arch` model (§3.1); nullopt:
// not written. EXAONE 4's post-norms have their own names (its post_attention_layernorm
// follows attention, where Llama's precedes the MLP).
std::optional<std::string> gguf_tensor_name(Arch arch, TensorRole role, int64_t layer);

// llama.cpp's architecture name (general.architecture).
std::string_view gguf_arch_name(Arch arch);

// The rotary factors llama.cpp applies per frequency (rope_freqs.weight, §3.1), generated
// from the config by convert_hf_to_gguf.py for Llama-3 RoPE scaling.
inline constexpr const char* kGgufRopeFreqs = "rope_freqs.weight";
// The Hugging Face config.json a shardpress GGUF carries when llama.cpp's keys cannot say
// everything the file's model is (read back by checkpoint/gguf_model).
inline constexpr const char* kGgufConfigKey = "shardpress.config";

// Llama's Q/K rows (and biases, cols = 1), from Hugging Face's rotate-half order to
// llama.cpp's adjacent pairs (§3.3), and back.
std::vector<float> permute_qk_rows(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t heads);
std::vector<float> unpermute_qk_rows(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t heads);
// Whether `t` is permuted in a GGUF of `config` (Llama's q/k weights and biases), and by
// how many heads.
std::optional<int64_t> qk_permute_heads(const ModelConfig& config, TensorRole role);

}  // namespace sp
