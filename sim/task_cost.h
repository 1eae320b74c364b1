// What one task of a plan costs on a device: its work (bytes, flops, GPTQ loops) from the
// model's shapes, and the seconds that work takes from per-device rates measured by our
// benchmarks. Every rate is a named constant in task_cost.cc with the benchmark and the
// machine it comes from; the GTX 1080 Ti's are projections from the H100 figures (not
// measured on a 1080 Ti).
#pragma once

#include <cstdint>
#include <string>

#include "formats/model_layout.h"
#include "jobs/job_settings.h"
#include "ops/task_memory.h"
#include "shardpress.pb.h"
#include "sim/lab.h"

namespace sp::sim {

struct TaskWork {
  uint64_t weight_bytes = 0;    // the layer's stored bytes (an RTN task reads and quantizes them)
  double forward_flops = 0;     // forward passes through the layer over the calibration tokens
  double hessian_flops = 0;     // accumulating the Hessians (X^T X per distinct input)
  double obs_first_flops = 0;   // GPTQ/SparseGPT's first loop over the projections
  double obs_search_flops = 0;  // the scale search's further loops
  double obs_weights = 0;       // weights of the projections GPTQ/SparseGPT work on
  double head_flops = 0;        // evaluation head: the output matrix over every token
  double attention_scores = 0;  // causal attention scores over all forward passes (softmax work)
  int obs_loops = 0;            // GPTQ/SparseGPT loops over all projections (fixed cost each)
  uint64_t vram = 0;            // device memory peak on a GPU worker (0: CPU work)
  bool forward_on_cpu = false;  // a GPU worker whose budget fits no forward micro-batch
};

// Flops of one forward pass through decoder layer `layer` over `data` (projections and
// attention scores; what the H100 benchmark's "482 TFLOP" counts for EXAONE-4.0-32B).
double layer_forward_flops(const ModelDescription& model, int64_t layer, CalibrationShape data);
// Flops of accumulating one layer's Hessians over `data`'s tokens (tokens x cols^2 per
// distinct projection input: q/k/v share one, gate/up share one).
double layer_hessian_flops(const ModelConfig& config, CalibrationShape data);

// The work of task `task` of `plan` on a worker of `device` (its plan shard's tensors
// sized from `model`).
TaskWork task_work(const ModelDescription& model, const CompressSettings& settings, CalibrationShape data,
                   const shardpress::v1::JobPlan& plan, const shardpress::v1::TaskPlan& task,
                   const DeviceModel& device);

// Seconds `work` computes on `device`, alone on its cores.
double compute_seconds(const TaskWork& work, const DeviceModel& device);

}  // namespace sp::sim
