// A sweep: one base job spec and the settings to vary, expanded into jobs that are
// submitted together (`shardpress sweep`) and compared (`shardpress report`).
//
//   name: stories-sweep          # jobs are named NAME.LABEL
//   base: {model: ..., output: out/sweep, calibrate: {...}, evaluate: {...}}
//   axes:                        # every combination, first key outermost
//     prune.method: [magnitude, sparsegpt]
//     prune.sparsity: [0.2, 0.3]
//   variants:                    # and/or explicit ones: keys to set (label: optional)
//     - {quantize.format: gguf, quantize.type: Q4_K_M, label: q4km}
//
// Each variant is the base with its keys set, then read like any job file (defaults,
// validation; a bad combination is an error naming the variant). Its output is
// base.output/LABEL (LABEL.gguf for format gguf). A key is `section.key` or a top-level
// key other than name and output.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "shardpress.pb.h"

namespace sp {

struct SweepVariant {
  std::string label;                                        // "magnitude-0.2"
  std::vector<std::pair<std::string, std::string>> settings;  // the keys it sets, in order
  shardpress::v1::JobSpec spec;                             // named NAME.LABEL, output under base.output
};

struct SweepSpec {
  std::string name;
  shardpress::v1::JobSpec base;
  std::vector<SweepVariant> variants;
};

// INVALID_ARGUMENT naming the key or variant for anything that will not do (no variants,
// a label used twice, a job name over 64 characters, a variant's settings invalid).
absl::StatusOr<SweepSpec> parse_sweep_yaml(std::string_view text, std::string_view label);

}  // namespace sp
