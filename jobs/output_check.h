// Checking a task's result against its plan before accepting it.
#pragma once

#include <vector>

#include "common/status.h"
#include "formats/bnb_format.h"
#include "ops/compress_shard.h"
#include "shardpress.pb.h"

namespace sp {

// INVALID_ARGUMENT unless `r` holds, for each input tensor of `shard` in order, exactly the
// outputs the spec implies: the bitsandbytes tensors of a quantized projection (names,
// dtypes, shapes; the quant_state JSON 1..512 bytes), a pruned weight in its dtype, or
// the input itself unchanged (same digest).
//
// `activations` (non-empty: [sequences, tokens, hidden]) adds a group holding the
// activations for the next layer, in `activations_dtype`; `forward_only` expects that
// group alone. `statistics` (> 0) adds a last group: the layer's dense calibration
// statistics another job will take, one float32 `__dense_statistics__` of that many values.
// What a compression task returns for input tensor `in` of its shard (output_specs: the
// bitsandbytes tensors of a quantized projection, the quant_state JSON's length variable,
// a pruned weight; format gguf: its GGUF bytes as U8 under its GGUF name), or `in`
// unchanged (`same_bytes`).
struct ExpectedOutput {
  std::vector<TensorSpec> tensors;
  bool same_bytes = false;
};
ExpectedOutput expected_output(const shardpress::v1::TensorMeta& in, const CompressSettings& settings);

absl::Status check_outputs(const shardpress::v1::ShardPlan& shard, const CompressSettings& settings,
                           const shardpress::v1::CompleteRequest& r, const std::vector<int64_t>& activations = {},
                           bool forward_only = false, DType activations_dtype = DType::kF32, int64_t statistics = 0);

}  // namespace sp
