// `verify` of a GGUF file: the container parses, the metadata describes a llama/qwen2
// model, every tensor it needs is there with the right shape in a type we decode, every
// tensor decodes to finite values. With `against` (the original Hugging Face folder), the
// per-tensor error of the decoded weights, and — when the file records no importance
// matrix — how many blocks differ from round-to-nearest of the original in the same type
// (the reference quantizers: a file from llama-quantize or shardpress without --imatrix
// has none; with `exact` every block must match).
#pragma once

#include <string>

#include "checkpoint/verify.h"

namespace sp {

absl::StatusOr<VerifyReport> verify_gguf(const std::string& path, const VerifyOptions& options);

}  // namespace sp
