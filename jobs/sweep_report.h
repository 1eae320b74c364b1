// A sweep's variants side by side (`shardpress report`, and the status page's sweeps) —
// bytes on disk, bits per weight, perplexity and its change from the original, accuracy,
// wall time and worker time — as a table, JSON or CSV, and a self-contained SVG plot of
// perplexity against size with the Pareto front (no variant both smaller and better) marked.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "shardpress.pb.h"

namespace sp {

struct ReportRow {
  std::string label;   // the variant ("magnitude-0.2")
  std::string job;     // its job id
  std::string state;   // SUCCEEDED, FAILED, RUNNING, ...
  std::vector<std::pair<std::string, std::string>> settings;  // what the variant sets
  uint64_t bytes = 0;            // output on disk (0: not written)
  double bits_per_weight = 0;    // 8 * bytes / parameters
  double perplexity = 0;         // 0: not evaluated
  double original_perplexity = 0;
  bool passed = true;            // within its gate (or none)
  int64_t items = 0;             // multiple choice (evaluate.choices): items scored (0: not asked)
  double acc = 0, acc_stderr = 0, original_acc = 0;
  double wall_s = 0;             // submit to end
  double worker_s = 0;           // summed time of its tasks on workers
};

// The row of variant `label` from its job's status (with tasks, for the worker time).
ReportRow report_row(const shardpress::v1::JobStatus& s, const std::string& label);

// pareto[i]: row i is on the front — written and evaluated, and no other such row is
// at most as large and at most as perplexing with one of the two strictly.
std::vector<bool> pareto_front(const std::vector<ReportRow>& rows);

std::string report_table(const std::vector<ReportRow>& rows);
std::string report_csv(const std::vector<ReportRow>& rows);
std::string report_json(const std::string& sweep, const std::vector<ReportRow>& rows);
// SVG 1.1, no scripts or external references: x = size on disk (MiB), y = perplexity; the
// original's perplexity as a dashed line; front points filled and joined, others hollow.
std::string report_svg(const std::string& sweep, const std::vector<ReportRow>& rows);

}  // namespace sp
