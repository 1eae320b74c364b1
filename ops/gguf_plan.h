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
#include "formats/imatrix_file.h"
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
  // llama.cpp's importance of each column (an imatrix entry / ncall): the scale search
  // weighs the columns by it, as llama-quantize --imatrix does. Empty: unweighted.
  std::vector<float> importance;
};

// UNIMPLEMENTED for tensors llama.cpp has no name for.
absl::StatusOr<std::vector<GgufTensorPlan>> plan_gguf_tensors(const ModelDescription& desc, const GgufFtype& type);

// Tensors llama.cpp reads that no Hugging Face tensor holds, with their bytes:
// rope_freqs.weight (F32, head_dim / 2 factors) for Llama-3 RoPE scaling in llama and
// exaone4 models. The converter writes them first; so do we.
struct GgufGeneratedTensor {
  GgufTensorPlan plan;  // source empty
  std::vector<uint8_t> bytes;
};
std::vector<GgufGeneratedTensor> gguf_generated_tensors(const ModelConfig& config);

// Attaches each quantizable weight's importance from `m` (weights it has no entry for stay
// unweighted); an entry of the wrong length or with a non-finite value is an error.
absl::Status add_importance(std::vector<GgufTensorPlan>& plan, const Imatrix& m);

// The GGUF bytes of one tensor: its stored bytes (`dtype`, `shape`) to float32, Q/K rows
// permuted, quantized to the planned type (rows over `threads`, weighted by the plan's
// importance when it has one).
std::vector<uint8_t> gguf_tensor_bytes(const GgufTensorPlan& p, std::span<const uint8_t> bytes, DType dtype,
                                       const std::vector<int64_t>& shape, int threads);
// The same from the tensor already in float32 (Hugging Face row order).
std::vector<uint8_t> gguf_tensor_bytes(const GgufTensorPlan& p, std::vector<float> x, const std::vector<int64_t>& shape,
                                       int threads);

}  // namespace sp
