// Following a job until it ends: a redrawn view on a terminal (fitted to its height),
// a line per change otherwise; the final view on stdout, as JSON with `json`. Returns the
// exit code: 0 succeeded, 1 failed or cancelled, 3 when the coordinator cannot be reached
// at all (at once, like every other command) or stays unreachable for `unreachable_ms`
// after it answered (a restart in the middle of a job).
#pragma once

#include <functional>

#include "common/status.h"
#include "shardpress.pb.h"

namespace sp::cli {

struct FollowOptions {
  int64_t unreachable_ms = 30'000;
  std::function<bool()> interrupted = [] { return false; };
  bool final_view_on_stdout = true;  // false: stderr (stdout carries a result of its own)
  bool json = false;                 // the final view as one JSON document
  int64_t poll_ms = 250;             // between status calls (`local` asks its own core: 50)
};

int follow_job(const std::function<absl::StatusOr<shardpress::v1::JobStatus>()>& get, const std::string& address,
               const FollowOptions& options = {});

}  // namespace sp::cli
