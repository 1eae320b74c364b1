// An importance matrix of a model computed by shardpress (`shardpress imatrix`, and
// `compress --format gguf --calib-ids`): the original model run layer by layer on
// calibration token ids (ops/importance), one entry per quantizable projection under its
// GGUF name, in llama.cpp's file convention (values = mean x_j^2 times ncall, ncall = the
// number of sequences), so llama-quantize --imatrix reads it as it reads llama-imatrix's.
#pragma once

#include <string>

#include "common/status.h"
#include "formats/imatrix_file.h"
#include "formats/token_ids.h"

namespace sp {

absl::StatusOr<Imatrix> compute_imatrix(const std::string& model_dir, const TokenBatch& ids, const std::string& dataset);

}  // namespace sp
