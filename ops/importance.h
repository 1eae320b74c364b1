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
#include <string>
#include <vector>

#include "common/status.h"
#include "formats/imatrix_file.h"
#include "ops/calibrate_layer.h"

namespace sp {

struct LayerImportance {
  std::array<std::vector<float>, kLinearInputs> sum_squares;  // per LinearInput, one per column
  int64_t tokens = 0;
};

absl::StatusOr<LayerImportance> layer_importance(const ModelConfig& config, int64_t layer,
                                                 std::span<const InputTensor> inputs, Activations& acts);

// The imatrix file's entry for a weight from its input's sums (llama.cpp's convention:
// values = mean x_j^2 times ncall, ncall = the number of sequences).
ImatrixEntry imatrix_entry(std::string name, std::span<const float> sums, int64_t tokens, int32_t ncall);

// A layer of a format gguf job rounded to nearest with importance values computed on the
// calibration activations `acts` (CompressSettings::gguf_importance): each tensor becomes
// its planned GGUF tensor (InputTensor::gguf), the linear weights weighted by their input's
// importance, as `compress --format gguf --calib-ids` writes them. `acts` is replaced by the
// dense layer's output (what llama-imatrix's next layer sees).
absl::StatusOr<CalibratedLayer> importance_weighted_layer(const ModelConfig& config, int64_t layer,
                                                          std::span<const InputTensor> inputs, Activations& acts);

}  // namespace sp
