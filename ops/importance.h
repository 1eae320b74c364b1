// llama.cpp's importance values (what `llama-imatrix` collects, ../shared/docs/
// gguf-format.md §8) from shardpress' own forward pass: for each linear input of a layer
// (q/k/v share one, o, gate/up share one, down), the sum over calibration tokens of each
// column's x_j^2, accumulated in float32 token by token as llama.cpp does. The dense
// layer's output replaces the activations: what enters the next layer (llama-imatrix runs
// the original model).
//
// Thread-safety: pure function of its inputs.
#pragma once

#include <array>
#include <span>
#include <vector>

#include "common/status.h"
#include "ops/calibrate_layer.h"

namespace sp {

struct LayerImportance {
  std::array<std::vector<float>, kLinearInputs> sum_squares;  // per LinearInput, one per column
  int64_t tokens = 0;
};

absl::StatusOr<LayerImportance> layer_importance(const ModelConfig& config, int64_t layer,
                                                 std::span<const InputTensor> inputs, Activations& acts);

}  // namespace sp
