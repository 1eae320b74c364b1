// Compresses a model folder on this machine in one process: each shard (a decoder layer,
// embeddings, final norm, lm_head) is pruned/quantized in turn, its outputs staged on disk,
// then the checkpoint is assembled atomically. Memory stays bounded by one shard.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "formats/token_ids.h"
#include "ops/calibrate_layer.h"
#include "ops/compress_shard.h"

namespace sp {

struct LocalCompressOptions {
  CompressSettings settings;
  // Calibration token ids, when the methods need them; sequential: each layer sees the
  // compressed previous layers (else the original model's activations).
  std::optional<TokenBatch> calibration;
  bool sequential = true;
  // What the activations are rounded to between layers: what a job's tasks hand on
  // (kCalibrationActivationsDType). DType::kF32 only to measure what that rounding costs.
  DType activations_dtype = kCalibrationActivationsDType;
  uint64_t max_shard_bytes = 5'000'000'000ull;
  // Where the work runs (the CPU by default): NF4 backend, magnitude pruning, and the
  // calibration's forward / GPTQ hooks (worker/device.h makes them for --device).
  const Nf4Backend* backend = nullptr;
  const PruneDevice* prune_device = nullptr;
  CalibrationDevice device;
  // Called after each shard: (index, count, shard id, seconds for it).
  std::function<void(size_t, size_t, const std::string&, double)> on_shard;
};

struct LocalCompressSummary {
  std::string output_dir;
  size_t shards = 0;
  uint64_t input_bytes = 0;
  uint64_t output_bytes = 0;
  uint64_t quantized_params = 0;
  std::vector<TensorReport> tensors;
  std::vector<LinearReport> linears;  // calibrated jobs: GPTQ loss and output error per weight
  std::vector<std::string> files;
  double seconds = 0;
};

absl::StatusOr<LocalCompressSummary> compress_model_local(const std::string& model_dir,
                                                          const std::string& out_dir,
                                                          const LocalCompressOptions& options);

}  // namespace sp
