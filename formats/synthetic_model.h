// A synthetic Hugging Face model folder: the real tensor names, shapes and config.json of
// a Llama, Qwen2 or EXAONE 4.0 model of about the requested size, with deterministic
// random weights (normal-like, std 0.02; norms near 1). For benchmarks and scale tests.
#pragma once

#include <cstdint>
#include <string>

#include "common/dtype.h"
#include "common/status.h"
#include "formats/model_config.h"

namespace sp {

struct SynthOptions {
  Arch arch = Arch::kLlama;
  uint64_t params = 1'000'000'000;
  DType dtype = DType::kBF16;
  uint64_t seed = 1;
  uint64_t max_shard_bytes = 2'000'000'000ull;
  // Shape overrides (0: chosen from `params`): e.g. rows that are whole 256-blocks.
  int64_t hidden = 0, intermediate = 0, layers = 0;
};

struct SynthSummary {
  uint64_t params = 0;
  uint64_t bytes = 0;
  int64_t layers = 0, hidden = 0, intermediate = 0, vocab = 0;
};

// "1B", "125M", "260K", "5000000".
absl::StatusOr<uint64_t> parse_param_count(std::string_view text);

// Writes config.json and safetensors shards into `out_dir` (must not exist).
absl::StatusOr<SynthSummary> write_synthetic_model(const std::string& out_dir, const SynthOptions& options);

}  // namespace sp
