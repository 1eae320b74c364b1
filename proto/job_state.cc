#include "proto/job_state.h"

#include <algorithm>
#include <cctype>

namespace sp {

using namespace shardpress::v1;  // NOLINT

bool job_terminal(JobState s) { return s == SUCCEEDED || s == FAILED || s == CANCELLED; }

std::string job_state_text(JobState s) {
  const std::string& name = JobState_Name(s);
  return name.empty() || s == JOB_STATE_UNSPECIFIED ? "?" : name;
}

std::string job_state_name(JobState s) {
  std::string name = job_state_text(s);
  if (name == "?") return "unknown";
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  return name;
}

}  // namespace sp
