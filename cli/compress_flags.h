// The prune/quantize flags shared by `compress` and `inspect`.
#pragma once

#include <optional>
#include <string>

#include "CLI/CLI.hpp"
#include "ops/compress_shard.h"

namespace sp::cli {

struct CompressFlags {
  std::string prune = "none";  // none | magnitude | wanda | sparsegpt
  std::optional<double> sparsity;  // not given: 0.3 (2:4: 0.5, the only value it has)
  std::string scope = "row";   // tensor | row | 2:4
  bool no_quantize = false;
  int blocksize = 64;
  bool no_double_quant = false;
  std::string compute_dtype = "bfloat16";
  std::string method = "rtn";  // rtn | gptq
  bool act_order = false;
  bool true_sequential = false;
  double scale_search = 0.1;
  double damp = 0.01;
  // Calibration data (gptq, wanda, sparsegpt).
  std::string calib_ids;
  int64_t calib_samples = 128;
  int64_t seq_len = 0;  // 0: the file's line length
  std::string calib_mode = "sequential";
};

void add_compress_flags(CLI::App* cmd, CompressFlags* f);
// `need_ids`: calibrated methods require --calib-ids (inspect plans without the file).
absl::StatusOr<CompressSettings> to_settings(const CompressFlags& f, bool need_ids = true);

}  // namespace sp::cli
