// The prune/quantize flags shared by `compress` and `inspect`.
#pragma once

#include <string>

#include "CLI/CLI.hpp"
#include "ops/compress_shard.h"

namespace sp::cli {

struct CompressFlags {
  std::string prune = "none";  // none | magnitude
  double sparsity = 0.3;
  std::string scope = "row";   // tensor | row | 2:4
  bool no_quantize = false;
  int blocksize = 64;
  bool no_double_quant = false;
  std::string compute_dtype = "bfloat16";
};

void add_compress_flags(CLI::App* cmd, CompressFlags* f);
absl::StatusOr<CompressSettings> to_settings(const CompressFlags& f);

}  // namespace sp::cli
