// Rendering a job's status: the human view (header, progress bar, task table) and JSON.
#pragma once

#include <string>
#include <vector>

#include "shardpress.pb.h"

namespace sp::cli {

std::string state_text(shardpress::v1::JobState s);
std::string task_state_text(shardpress::v1::TaskState s);
bool job_finished(shardpress::v1::JobState s);

// Header, progress (layers done / total, bytes, throughput, ETA) and, with `tasks`, the
// task table with the worker running each.
std::string render_job(const shardpress::v1::JobStatus& j, bool tasks);
// One line: "job-0001 stories-nf4 running 3/5 layers ...".
std::string render_job_line(const shardpress::v1::JobStatus& j);
std::string render_jobs_table(const std::vector<shardpress::v1::JobStatus>& jobs);
std::string render_workers(const std::vector<shardpress::v1::WorkerInfo>& workers, int64_t now_ms);

// Any of our messages as JSON with the proto field names.
std::string to_json(const google::protobuf::Message& m);

}  // namespace sp::cli
