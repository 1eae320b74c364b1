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
  else return absl::InvalidArgumentError("'" + std::string(text) + "': unknown unit (use ms, s, m, h)");
  return static_cast<int64_t>(ms);
}

}  // namespace sp
