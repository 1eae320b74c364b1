// What each tensor of a model is: its layer and role, the shape the config implies,
// and the per-layer shards the coordinator cuts (every tensor of decoder layer i is one
// shard; embeddings, final norm and lm_head are shards of their own).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/status.h"
#include "formats/model_config.h"

namespace sp {

enum class TensorRole {
  kEmbedding, kFinalNorm, kLmHead,
  kInputNorm, kPostAttentionNorm, kPostFeedforwardNorm, kQNorm, kKNorm,
  kQProj, kKProj, kVProj, kOProj, kGateProj, kUpProj, kDownProj,
  kQBias, kKBias, kVBias, kOBias, kGateBias, kUpBias, kDownBias,
  kRotaryInvFreq,  // stale buffer in old Llama checkpoints: ignored, not written
};

std::string_view role_name(TensorRole r);
// Inverse of role_name.
std::optional<TensorRole> role_from_name(std::string_view name);
// q/k/v/o/gate/up/down projection weights: the tensors pruned and quantized to NF4.
// Never norms, embeddings, lm_head or biases.
bool is_linear_weight(TensorRole r);

// The shape of a tensor as stored (dtype and shape), independent of the file it is in.
struct TensorShape {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t numel() const;
  uint64_t nbytes() const { return numel() * dtype_size(dtype); }
};

struct ModelTensor {
  std::string name;
  TensorRole role = TensorRole::kEmbedding;
  int64_t layer = -1;  // -1 outside decoder layers
  TensorShape stored;
};

enum class ShardKind { kEmbedding, kLayer, kFinalNorm, kLmHead };

struct ModelShard {
  std::string id;  // "embed", "layer.0" ... "layer.63", "norm", "lm_head"
  ShardKind kind = ShardKind::kLayer;
  int64_t layer = -1;
  std::vector<std::string> tensors;  // names, in the order of expected_tensors()
  uint64_t params = 0;
  uint64_t bytes = 0;
  uint64_t linear_params = 0;        // params in linear projection weights
  uint64_t linear_bytes = 0;         // their stored bytes
  uint64_t largest_linear_numel = 0;
  int64_t largest_linear_cols = 0;
};

struct ModelDescription {
  ModelConfig config;
  std::vector<ModelTensor> tensors;  // expected order: embed, layers 0..L-1, norm, lm_head
  std::vector<ModelShard> shards;
  std::vector<std::string> ignored;  // present but not part of the model (rotary inv_freq)
  uint64_t params = 0;
  std::map<DType, uint64_t> bytes_by_dtype;

  const ModelTensor* find(std::string_view name) const;
};

// The tensors a model of this config must have (name, role, layer, shape; dtype unset).
// `optional` is set for lm_head of a tied model.
struct ExpectedTensor {
  std::string name;
  TensorRole role;
  int64_t layer;
  std::vector<int64_t> shape;
  bool optional = false;
};
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& config);

// Checks `actual` (name -> dtype/shape) against the config: every expected tensor
// present with the right shape, nothing unknown, projection weights in F32/F16/BF16.
// The error lists every problem found (up to a limit) and what was expected.
absl::StatusOr<ModelDescription> describe_model(const ModelConfig& config,
                                                const std::map<std::string, TensorShape>& actual,
                                                std::string_view label);

}  // namespace sp
