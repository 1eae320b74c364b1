// Rotary position embeddings as HF transformers computes them (architectures.md §1.2):
// inverse frequencies with the `rope_scaling` variants default/linear/llama3/dynamic,
// cos/sin tables per position, and the rotate_half application (element i pairs with
// element i + d/2).
//
// Thread-safety: pure; a RopeTable is immutable once built.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "common/status.h"
#include "formats/model_config.h"

namespace sp {

struct RopeTable {
  int64_t head_dim = 0;
  int64_t positions = 0;
  std::vector<float> cos, sin;  // [positions, head_dim]
};

// inv_freq[i], i < head_dim/2, after scaling; INVALID_ARGUMENT for a scaling type we do
// not implement (yarn, longrope), naming it.
absl::StatusOr<std::vector<float>> rope_inv_freq(const ModelConfig& config, int64_t seq_len);

absl::StatusOr<RopeTable> rope_table(const ModelConfig& config, int64_t positions);

// Llama-3 RoPE scaling as llama.cpp applies it: one divisor per frequency (freq / factor),
// what convert_hf_to_gguf.py writes as rope_freqs.weight — computed as it computes them, in
// float32 (torch's arithmetic). nullopt unless rope_scaling's type is llama3.
std::optional<std::vector<float>> llama3_rope_factors(const ModelConfig& config);

// Rotates each of `heads` vectors of x[t, heads * head_dim] at position t, in place.
void apply_rope(const RopeTable& rope, float* x, int64_t tokens, int64_t heads);

}  // namespace sp
