// The prune/quantize/calibrate flags shared by `compress` and `inspect`. They mirror the
// job spec's keys and become a job spec, validated by the same function a job is
// (jobs/job_settings.h): the same defaults, rules and messages.
#pragma once

#include <optional>
#include <string>

#include "CLI/CLI.hpp"
#include "formats/imatrix_file.h"
#include "jobs/job_settings.h"

namespace sp::cli {

// Unset: the job spec's default.
struct CompressFlags {
  std::optional<std::string> prune;  // none | magnitude | wanda | sparsegpt
  std::optional<double> sparsity;
  std::optional<std::string> scope;  // tensor | row | 2:4
  bool no_quantize = false;
  std::optional<std::string> format;  // nf4 | gguf
  std::optional<std::string> type;    // gguf: Q4_0, Q4_K_M, F16, ...
  std::optional<std::string> imatrix; // gguf: llama.cpp importance-matrix file
  std::optional<int> blocksize;
  bool no_double_quant = false;
  std::optional<std::string> compute_dtype;
  std::optional<std::string> method;  // rtn | gptq
  bool act_order = false, no_act_order = false;
  bool true_sequential = false;
  std::optional<std::string> activations;
  std::optional<double> scale_search;
  std::optional<std::string> scales;
  std::optional<double> damp;
  std::optional<std::string> calib_ids;
  std::optional<int64_t> calib_samples;
  std::optional<int64_t> seq_len;  // 0: the file's line length
  std::optional<std::string> calib_mode;
};

void add_compress_flags(CLI::App* cmd, CompressFlags* f);
// The flags as a job spec (defaults for what is not given) and its settings.
// `need_ids`: calibrated methods require --calib-ids (inspect plans without the file).
absl::StatusOr<JobSettings> to_settings(const CompressFlags& f, bool need_ids = true);

// The importance-matrix file `--imatrix` / quantize.imatrix names, read (errors name the
// flag); nullopt when none is given.
absl::StatusOr<std::optional<Imatrix>> read_imatrix_option(const JobSettings& settings);

}  // namespace sp::cli
