// Rendering a job's status: the human view (header, progress bar, task table) and JSON.
#pragma once

#include <string>
#include <vector>

#include "proto/job_state.h"
#include "proto/json.h"
#include "shardpress.pb.h"

namespace sp::cli {

std::string task_state_text(shardpress::v1::TaskState s);

// Header, progress (tasks done / total, bytes, throughput, ETA) and, with `tasks`, the
// task table with the worker running each (and an ERROR column when a task has one).
// `max_lines` > 0: fit that many lines (a terminal's height) by leaving finished and
// waiting tasks out of the table first; the header and progress always stay.
std::string render_job(const shardpress::v1::JobStatus& j, bool tasks, int max_lines = 0);
std::string render_jobs_table(const std::vector<shardpress::v1::JobStatus>& jobs);
std::string render_workers(const std::vector<shardpress::v1::WorkerInfo>& workers, int64_t now_ms);

// Any of our messages as JSON (proto field names, 64-bit counters as numbers).
using sp::to_json;

}  // namespace sp::cli
