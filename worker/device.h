// Which device a worker computes on: `--device auto|cpu|cuda:N`. `auto` picks the first
// CUDA device when the build has CUDA and a device is present, else the CPU. The label is
// what `shardpress workers` shows ("cuda:0 (NVIDIA GeForce GTX 1080 Ti, sm_61, 11.00 GiB)").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/layer_forward_cuda.h"
#include "ops/calibrate_layer.h"
#include "ops/nf4.h"
#include "ops/prune.h"

namespace sp {

struct DeviceChoice {
  std::string label = "cpu";
  int cuda = -1;  // CUDA device index, or -1 for the CPU
};

// INVALID_ARGUMENT for an unknown spelling, a CUDA device in a CPU-only build, or a
// device index that is not present (listing the ones that are).
absl::StatusOr<DeviceChoice> choose_device(const std::string& flag);

// The NF4 backend a worker on `device` quantizes with: the CUDA kernel (falling back to
// the CPU for a task whose kernel call fails, with the device's message on stderr), or
// the fastest CPU backend. Same bytes either way.
const Nf4Backend& nf4_backend_for(const DeviceChoice& device);

// Magnitude pruning on the device (nullptr: the CPU). A kernel call that fails reports
// the device's message on stderr and the CPU prunes that weight. Same zeros either way.
const PruneDevice* prune_device_for(const DeviceChoice& device);

// The forward pass, Hessians and GPTQ/SparseGPT loops on the device (empty functions:
// the CPU), within `memory_budget` bytes of device memory (the worker's --gpu-memory;
// less if less is free). What does not fit, or fails on the device, runs on the CPU with the
// device's message on stderr — except a failure while the activations are overwritten
// in place, which fails the task (it is retried).
CalibrationDevice calibration_device_for(const DeviceChoice& device, uint64_t memory_budget);

// A --gpu-memory flag as a budget for calibration_device_for: empty means whatever the
// device has free; a bad size is INVALID_ARGUMENT naming the flag.
absl::StatusOr<uint64_t> gpu_memory_budget(const std::string& flag);

// How a GPU worker with `budget` bytes of device memory calibrates one layer (what
// `inspect` shows): sequences per forward micro-batch (0: the forward does not fit and
// runs on the CPU) and, per projection, how many GPTQ loops run side by side (the scale
// search's candidates; 0: that projection runs on the CPU).
struct GpuCalibrationPlan {
  uint64_t budget = 0;
  int64_t sequences_per_batch = 0;
  uint64_t forward_bytes = 0;
  struct Projection {
    std::string name;
    int64_t rows = 0, cols = 0;
    int loops = 0, candidates = 1;
    uint64_t bytes = 0;
  };
  std::vector<Projection> projections;  // empty when no GPTQ/SparseGPT
};
GpuCalibrationPlan plan_gpu_calibration(const ModelConfig& config, const CompressSettings& settings,
                                        int64_t sequences, int64_t tokens, uint64_t budget);

// The shape the GPU forward takes for a layer of this model (norm placement, QK-norm,
// RoPE or NoPE, sliding window).
CudaLayerShape cuda_layer_shape(const ModelConfig& config, int64_t layer);

// GPTQ loops a [rows, cols] weight can run side by side within `budget` (at most
// `candidates`; 0: not even one fits).
int gptq_loops_that_fit(int64_t rows, int64_t cols, int candidates, uint64_t budget);

}  // namespace sp
