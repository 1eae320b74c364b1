// Which device a worker computes on: `--device auto|cpu|cuda:N`. `auto` picks the first
// CUDA device when the build has CUDA and a device is present, else the CPU. The label is
// what `shardpress workers` shows ("cuda:0 (NVIDIA GeForce GTX 1080 Ti, sm_61, 11.00 GiB)").
#pragma once

#include <string>

#include "common/status.h"
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
// the CPU), within `memory_budget` bytes of device memory (the worker's --memory; less
// if less is free). What does not fit, or fails on the device, runs on the CPU with the
// device's message on stderr — except a failure while the activations are overwritten
// in place, which fails the task (it is retried).
CalibrationDevice calibration_device_for(const DeviceChoice& device, uint64_t memory_budget);

}  // namespace sp
