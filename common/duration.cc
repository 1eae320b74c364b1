#include "common/duration.h"

#include <charconv>
#include <string>

namespace sp {

absl::StatusOr<int64_t> parse_duration_ms(std::string_view text) {
  double v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || v < 0)
    return absl::InvalidArgumentError("'" + std::string(text) + "' is not a duration (e.g. 30s, 500ms, 2m)");
  const std::string_view unit(p, static_cast<size_t>(text.data() + text.size() - p));
  double ms;
  if (unit.empty() || unit == "ms") ms = v;
  else if (unit == "s") ms = v * 1e3;
  else if (unit == "m") ms = v * 60e3;
  else if (unit == "h") ms = v * 3600e3;
  else if (unit == "d") ms = v * 86400e3;
  else return absl::InvalidArgumentError("'" + std::string(text) + "': unknown unit (use ms, s, m, h, d)");
  return static_cast<int64_t>(ms);
}

std::string format_duration_ms(int64_t ms) {
  struct Unit {
    int64_t ms;
    const char* name;
  };
  for (const Unit u : {Unit{86'400'000, "d"}, Unit{3'600'000, "h"}, Unit{60'000, "m"}, Unit{1'000, "s"}})
    if (ms != 0 && ms % u.ms == 0) return std::to_string(ms / u.ms) + u.name;
  return std::to_string(ms) + "ms";
}

}  // namespace sp
