// Durations in configs and flags: "30s", "500ms", "2m", "1h", or plain milliseconds.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/status.h"

namespace sp {

absl::StatusOr<int64_t> parse_duration_ms(std::string_view text);

}  // namespace sp
