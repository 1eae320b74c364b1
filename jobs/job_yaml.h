// Job specs as users write them: YAML read into the spec message, every default filled
// (jobs/job_settings.h), then validated. Unknown keys, keys given twice and bad values are
// INVALID_ARGUMENT errors that name the key.
#pragma once

#include <string_view>

#include "jobs/job_settings.h"

namespace sp {

// Parses YAML text and fills every default. `label` (the file) starts error messages.
absl::StatusOr<shardpress::v1::JobSpec> parse_job_yaml(std::string_view text, std::string_view label);

}  // namespace sp
