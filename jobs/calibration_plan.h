// How a calibrated job (gptq, wanda, sparsegpt) becomes tasks (DESIGN.md "Calibration"):
//
//   sequential: layer.0 -> layer.1 -> ... each CALIBRATE_STAGE task reads the
//     activations the previous one produced from the *compressed* layer, and commits its
//     compressed layer + the next activations (a crash costs at most one layer);
//   pipelined:  fwd.0 -> fwd.1 -> ... FORWARD_LAYER tasks run the *original* layers and
//     pass activations on; layer.i needs only fwd.(i-1), so all workers compress layers
//     at once while the forward chain streams ahead.
//
// The first layer (and fwd.0) read the token embeddings and the calibration ids instead.
// Stages (contiguous layers that fit a worker's memory) are planned for `inspect` and
// recorded on each layer shard.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "coordinator/task_scheduler.h"
#include "shardpress.pb.h"

namespace sp {

inline constexpr char kActivationsTensor[] = "__activations__";
inline constexpr char kCalibrationIdsTensor[] = "__calibration_ids__";
inline constexpr char kCalibrationShardId[] = "calibration";

// Tensors that travel between tasks but never reach the checkpoint.
inline bool is_internal_tensor(std::string_view name) { return name.starts_with("__"); }

// The tasks of layer shard `shard_index` (decoder layer `layer` of `num_layers`).
std::vector<shardpress::v1::TaskRecord> calibration_tasks(const std::string& job_id, int shard_index, int64_t layer,
                                                          int64_t num_layers, bool pipelined);

// Evaluation jobs: fwd.0 -> ... -> fwd.(L-1) -> head (EVAL_HEAD: final norm, output head,
// the NLL of every sequence). `layer` -1 is the head, on the final-norm shard.
std::vector<shardpress::v1::TaskRecord> eval_tasks(const std::string& job_id, int shard_index, int64_t layer,
                                                   int64_t num_layers);

// What a task reads: its shard's tensors, then the activations its dependency produced,
// or (first layer) the embeddings and the calibration ids. The evaluation head reads the
// final norm, the output head (or the tied embeddings), the last activations and the ids.
std::vector<shardpress::v1::TensorMeta> task_inputs(const shardpress::v1::JobRecord& j,
                                                    const shardpress::v1::TaskRecord& t,
                                                    const TaskScheduler& scheduler);

// Whether a task of this kind must return the activations for the next layer.
bool returns_activations(const shardpress::v1::JobRecord& j, const shardpress::v1::TaskRecord& t);

// [sequences, tokens, hidden] of the activations of a calibrated job.
std::vector<int64_t> activations_shape(const shardpress::v1::JobRecord& j);

}  // namespace sp
