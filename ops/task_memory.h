// Peak host memory of one shard task, for planning: which worker budget a task fits.
#pragma once

#include <cstdint>
#include <vector>

#include "formats/model_layout.h"
#include "ops/compress_shard.h"

namespace sp {

struct TaskMemory {
  uint64_t input = 0;    // the shard's bytes as stored (fetched and mapped)
  uint64_t working = 0;  // float32 copy + selection scratch of the largest weight
  uint64_t output = 0;   // the compressed tensors, held until uploaded
  uint64_t overhead = 0; // fixed allowance for the runtime and buffers
  uint64_t total() const { return input + working + output + overhead; }
};

// Fixed allowance per task.
inline constexpr uint64_t kTaskOverheadBytes = 64ull << 20;

TaskMemory estimate_task_memory(const ModelShard& shard, const CompressSettings& settings);

}  // namespace sp

namespace sp {

// Calibration data size: what every calibration task holds in activations.
struct CalibrationShape {
  int64_t sequences = 0;
  int64_t tokens = 0;
};

// Peak host memory of one calibrated layer task (ops/calibrate_layer): the layer in
// float32, activations in and out, one sequence's forward buffers, the four Hessians,
// and GPTQ's factorisation of the widest input in float64.
TaskMemory estimate_calibration_memory(const ModelShard& shard, const ModelConfig& config,
                                       const CompressSettings& settings, CalibrationShape data);
// Peak host memory of a pipelined forward task (the layer in float32 and activations).
TaskMemory estimate_forward_memory(const ModelShard& shard, const ModelConfig& config, CalibrationShape data);

// Peak host memory of an evaluation head task: the output matrix in float32, the last
// activations and one sequence's logits.
TaskMemory estimate_eval_head_memory(const ModelConfig& config, CalibrationShape data);

// Stages: contiguous layer ranges a worker with `budget` bytes holds together (their
// weights cached, the largest layer's working set on top). Layers that alone exceed the
// budget get a stage of their own and `fits` false.
struct Stage {
  int64_t first_layer = 0, last_layer = 0;  // inclusive
  uint64_t weight_bytes = 0;                // stored bytes of the stage's layers
  uint64_t peak_task = 0;                   // largest per-layer task estimate
  uint64_t total() const { return weight_bytes + peak_task; }
  bool fits = true;
};
std::vector<Stage> plan_stages(const ModelDescription& model, const CompressSettings& settings, CalibrationShape data,
                               uint64_t budget);

}  // namespace sp
