// Loads a model folder for evaluation as float32: an original Hugging Face checkpoint
// (F32/F16/BF16), a bitsandbytes NF4 checkpoint (verified first, then dequantized), or a
// GGUF file of a llama/qwen2 model (checkpoint/gguf_model.h: checked, then dequantized).
#pragma once

#include <string>

#include "common/status.h"
#include "ops/language_model.h"

namespace sp {

struct LoadedModel {
  LanguageModel model;
  bool quantized = false;  // a bitsandbytes NF4 checkpoint or a GGUF file
};

// NOT_FOUND / INVALID_ARGUMENT naming the file and problem (for a quantized folder, the
// first problems verify reports).
absl::StatusOr<LoadedModel> load_float_model(const std::string& dir);

}  // namespace sp
