// Job specs: the YAML a user writes, validated into the wire message.
//
//   name: stories-nf4            # optional; default: the output folder's name
//   model: /models/stories260k   # Hugging Face folder (under the coordinator's model root)
//   output: /out/stories-nf4     # new folder (under the output root)
//   overwrite: false             # true: replace an existing output at the end
//   prune: {method: none|magnitude|wanda|sparsegpt, sparsity: 0.3, scope: tensor|row|2:4}
//   quantize: {format: nf4|none, method: rtn|gptq, blocksize: 64, double_quant: true,
//              compute_dtype: bfloat16, act_order: true, damp: 0.01, scale_search: 0.1,
//              gptq_block_size: 128}
//   calibrate: {ids: FILE, samples: 128, seq_len: 0, mode: sequential|pipelined,
//               true_sequential: false, stage_memory: 10GiB}   # gptq, wanda, sparsegpt
//
// Unknown keys and bad values are INVALID_ARGUMENT errors that name the key.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "ops/compress_shard.h"
#include "shardpress.pb.h"

namespace sp {

// Parses YAML text and fills every default. `label` (the file) starts error messages.
absl::StatusOr<shardpress::v1::JobSpec> parse_job_yaml(std::string_view text, std::string_view label);

// Checks a complete spec (as sent over the wire).
absl::Status validate_job_spec(const shardpress::v1::JobSpec& spec);

// The ops' settings for a (valid) spec.
CompressSettings compress_settings(const shardpress::v1::JobSpec& spec);

// An evaluation job (eval.ids set): perplexity on the workers, nothing written.
inline bool is_eval_job(const shardpress::v1::JobSpec& spec) { return !spec.eval().ids().empty(); }

// True when the spec's methods need calibration data.
bool spec_needs_calibration(const shardpress::v1::JobSpec& spec);

// "magnitude 30% per row + NF4 (block 64, double quant)".
std::string describe_spec(const shardpress::v1::JobSpec& spec);

// A digest of a (normalized: defaults filled, paths resolved) spec: two specs that ask for
// the same job have the same digest. 32 hex digits.
std::string spec_digest(const shardpress::v1::JobSpec& spec);

// What differs between two specs, one line per field: "quantize.blocksize: 64 -> 128".
std::vector<std::string> spec_differences(const shardpress::v1::JobSpec& before, const shardpress::v1::JobSpec& now);

}  // namespace sp
