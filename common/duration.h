// Durations in configs and flags: "30s", "500ms", "2m", "1h", or plain milliseconds.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sp {

absl::StatusOr<int64_t> parse_duration_ms(std::string_view text);
// The largest whole unit: 600000 -> "10m", 1500 -> "1500ms" (parse_duration_ms reads it back).
std::string format_duration_ms(int64_t ms);

}  // namespace sp
