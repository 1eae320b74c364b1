// One decoder layer compressed with calibration (DESIGN.md "Calibration"): run the dense
// layer on the calibration activations while collecting each distinct linear input's
// Hessian (and Wanda's sums of squares), then prune and quantize all seven projections
// (Wanda / SparseGPT / GPTQ-on-NF4 / round-to-nearest as the settings say), and produce
// the activations for the next layer: from the compressed layer (`sequential`, GPTQ's
// true-sequential across layers) or from the dense one (`pipelined`).
//
// Thread-safety: pure function of its inputs.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "formats/model_config.h"
#include "ops/compress_shard.h"
#include "ops/decoder_layer.h"
#include "ops/hessian.h"
#include "ops/obs_compress.h"

namespace sp {

// Hidden states entering (or leaving) a layer: [sequences, tokens, hidden] float32.
struct Activations {
  int64_t sequences = 0;
  int64_t tokens = 0;
  int64_t hidden = 0;
  std::vector<float> data;
  float* row(int64_t s) { return data.data() + s * tokens * hidden; }
  const float* row(int64_t s) const { return data.data() + s * tokens * hidden; }
};

// The dtype calibration activations cross every layer boundary in — on the wire, in the
// coordinator's store and between the layers of a local run alike; compute is float32.
// bfloat16 would halve the bytes (DESIGN.md budgets 2.7 GB per boundary for a 32B model),
// but on the default GPTQ job on stories260k it moves the perplexity by +0.0119 (4.9792 ->
// 4.9912; float16: +0.0178), over the 0.005 we accept, so the boundary stays float32
// (tests/jobs/activations_precision_test.cc measures it and holds this choice to it).
inline constexpr DType kCalibrationActivationsDType = DType::kF32;
// Rounds every value to the nearest `dtype` value (ties to even) and back: what a layer
// boundary does to the activations.
void round_activations(Activations& acts, DType dtype);

// The calibration token ids embedded: the activations entering layer 0.
Activations embed_calibration(const ModelConfig& config, std::span<const float> embed, const int32_t* ids,
                              int64_t sequences, int64_t tokens);

struct LinearReport {
  std::string name;
  double loss = 0;       // GPTQ/SparseGPT loss sum (w - q)^2 / d^2 / 2 (0 for RTN)
  double damp = 0;       // damping fraction that factorised
  uint64_t dead_columns = 0;
  double output_error = 0;  // ||W X - Q X||^2 / ||W X||^2 on the calibration inputs
};

struct CalibratedLayer {
  ShardResult result;               // output groups (same shape as compress_shard's) and prune reports
  std::vector<LinearReport> linears;
};

// Runs every sequence of `acts` through the layer on a device: adds sum X^T X of each
// linear input i with collect[i] non-null to that (fresh) accumulator, and writes the
// outputs to `out` ([sequences, tokens, hidden]; may be acts.data; null: not wanted).
// On error the accumulators are untouched; DATA_LOSS says that part of `out` was
// written (when `out` aliases `acts`, the inputs are gone: the caller cannot redo it),
// any other error that `out` is untouched.
using ForwardDevice = std::function<absl::Status(const ModelConfig&, int64_t layer, const LayerWeights&,
                                                 const RopeTable&, const Activations& acts,
                                                 std::array<HessianAccumulator*, kLinearInputs> collect, float* out)>;

// Where calibrate_layer's heavy parts run; empty functions: the CPU. A device forward
// that fails before writing falls back to the CPU; one that fails after overwriting
// part of the activations in place fails the task (the coordinator retries it).
struct CalibrationDevice {
  ForwardDevice forward;
  ObsDevice obs;
};

// Runs the layer forward on all sequences of `acts` in place (no statistics), on the
// device when there is one (on the CPU when the device fails before writing).
absl::Status forward_layer(const ModelConfig& config, int64_t layer, const LayerWeights& w, Activations& acts,
                           const CalibrationDevice& device = {});
absl::Status forward_layer(const ModelConfig& config, int64_t layer, const LayerWeights& w, const RopeTable& rope,
                           Activations& acts, const CalibrationDevice& device = {});

// The dense pass's statistics of a layer: each linear input's sum X^T X (a row-major
// [c, c] float32 buffer whose upper triangle holds the sums), in LinearInput order,
// concatenated — dense_statistics_size(config) floats. They depend only on the layer's
// weights and the activations entering it, so jobs that calibrate the same layer on the
// same activations (the variants of a sweep at layer 0) can compute them once
// (coordinator/shared_statistics). Not with gptq.true_sequential (its later passes see
// compressed projections) or a GGUF importance-only job (it has no dense pass).
struct DenseStatistics {
  // Taken instead of running the dense pass (float32 bytes, as `collected` holds them). In
  // pipelined mode `acts` is then left as it entered: the next layer's activations come
  // from the forward chain, not this task.
  std::optional<std::span<const uint8_t>> given;
  std::vector<uint8_t>* collected = nullptr;  // the dense pass's sums are copied here
};
int64_t dense_statistics_size(const ModelConfig& config);

// `acts` enters the layer and is replaced by what enters the next one.
absl::StatusOr<CalibratedLayer> calibrate_layer(const ModelConfig& config, int64_t layer,
                                                std::span<const InputTensor> inputs, Activations& acts,
                                                const CompressSettings& settings, bool sequential,
                                                const Nf4Backend& backend = nf4_best_backend(),
                                                const CalibrationDevice& device = {}, DenseStatistics stats = {});

}  // namespace sp
