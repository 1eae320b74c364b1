// The per-shard task: prune and/or NF4-quantize the linear projection weights of one
// shard (a decoder layer, or the embed/norm/lm_head shards, which pass through), and
// produce the output tensors in the bitsandbytes serialization. One shard at a time, so
// memory is bounded by a layer plus a float32 copy of its largest weight.
//
// Thread-safety: pure function of its inputs.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "formats/bnb_format.h"
#include "formats/model_layout.h"
#include "ops/nf4.h"
#include "ops/prune.h"

namespace sp {

struct PruneSettings {
  PruneScope scope = PruneScope::kRow;
  double sparsity = 0.0;  // ignored for 2:4
};

struct CompressSettings {
  std::optional<PruneSettings> prune;  // absent: no pruning
  std::optional<Nf4Settings> quantize = Nf4Settings{};  // absent: weights stay in their dtype
};

// Checks the settings; INVALID_ARGUMENT naming the bad value.
absl::Status validate(const CompressSettings& s);

// "magnitude 30% per row + NF4 (block 64, double quant)".
std::string describe(const CompressSettings& s);

struct InputTensor {
  const ModelTensor* meta = nullptr;  // name, role, stored dtype/shape
  std::span<const uint8_t> bytes;
};

struct OutputTensor {
  TensorSpec spec;
  std::vector<uint8_t> data;
};

struct TensorReport {
  std::string name;
  TensorRole role = TensorRole::kEmbedding;
  bool quantized = false;
  std::optional<PruneStats> prune;
};

struct ShardResult {
  // Each group must stay in one checkpoint file (a quantized weight and its side
  // tensors); groups are in input order.
  std::vector<std::vector<OutputTensor>> groups;
  std::vector<TensorReport> reports;
};

// Compresses one shard. Errors name the tensor ("model.layers.3.mlp.up_proj.weight:
// element 17 (row 0, column 17) is nan ...").
absl::StatusOr<ShardResult> compress_shard(std::span<const InputTensor> inputs,
                                           const CompressSettings& settings,
                                           const Nf4Backend& backend = nf4_best_backend());

}  // namespace sp
