// What each tensor of a model becomes in a GGUF file of a given type or mix: its llama.cpp
// name and shape, the ggml type llama-quantize's rules choose (ops/ggml_ftypes) with the
// fallback when its rows fill no block, its bytes, and whether Llama's Q/K rows are
// permuted. The one plan `compress --format gguf`, `inspect` and a job's tasks and
// assembly follow.
//
// Thread-safety: pure function.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "formats/model_layout.h"
#include "ops/ggml_ftypes.h"

namespace sp {

struct GgufTensorPlan {
  std::string source;  // the Hugging Face tensor
  std::string name;    // GGUF name
  GgmlType type = GgmlType::kF32;
  std::vector<int64_t> ne;
  uint64_t bytes = 0;
  int64_t permute_heads = 0;  // Llama's q/k: rows permuted by this many heads
  bool quantizable = false;   // a weight llama-quantize quantizes (not a norm or bias)
  std::string fallback;       // why the type is not the one the rules chose
  bool weighted = false;      // (export) quantized with importance values
};

// UNIMPLEMENTED for exaone4 and tensors llama.cpp has no name for.
absl::StatusOr<std::vector<GgufTensorPlan>> plan_gguf_tensors(const ModelDescription& desc, const GgufFtype& type);

// The GGUF bytes of one tensor: its stored bytes (`dtype`, `shape`) to float32, Q/K rows
// permuted, quantized to the planned type (rows over `threads`; `importance`: one value per
// column, or empty).
std::vector<uint8_t> gguf_tensor_bytes(const GgufTensorPlan& p, std::span<const uint8_t> bytes, DType dtype,
                                       const std::vector<int64_t>& shape, int threads,
                                       std::span<const float> importance = {});
// The same from the tensor already in float32 (Hugging Face row order).
std::vector<uint8_t> gguf_tensor_bytes(const GgufTensorPlan& p, std::vector<float> x, const std::vector<int64_t>& shape,
                                       int threads, std::span<const float> importance = {});

}  // namespace sp
