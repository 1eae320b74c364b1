// Job states by name, for every component (CLI, coordinator, logs, metrics): one table,
// the proto's own enum names.
#pragma once

#include <string>

#include "shardpress.pb.h"

namespace sp {

// Succeeded, failed or cancelled: the job runs no more until resumed.
bool job_terminal(shardpress::v1::JobState s);
// "SUCCEEDED" (tables, JSON) and "succeeded" (log lines, events, metrics labels); "?" and
// "unknown" for a value the proto does not name.
std::string job_state_text(shardpress::v1::JobState s);
std::string job_state_name(shardpress::v1::JobState s);

}  // namespace sp
