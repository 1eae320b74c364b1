// Following a job until it ends: a redrawn view on a terminal, a line per change
// otherwise. Returns the exit code: 0 succeeded, 1 failed or cancelled, 3 when the
// coordinator stays unreachable for `unreachable_ms`.
#pragma once

#include <functional>

#include "common/status.h"
#include "shardpress.pb.h"

namespace sp::cli {

int follow_job(const std::function<absl::StatusOr<shardpress::v1::JobStatus>()>& get, const std::string& address,
               int64_t unreachable_ms = 30'000, const std::function<bool()>& interrupted = [] { return false; },
               bool final_view_on_stdout = true);

}  // namespace sp::cli
