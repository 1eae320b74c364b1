#include "common/test_hooks.h"

#include <charconv>
#include <string>

#include "fmt/format.h"

namespace sp {

absl::StatusOr<TestHooks> parse_test_hooks(std::string_view text) {
  TestHooks h;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const size_t eq = item.find('=');
    uint64_t v = 0;
    const std::string_view key = item.substr(0, eq), value = eq == std::string_view::npos ? "" : item.substr(eq + 1);
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (eq == std::string_view::npos || ec != std::errc() || p != value.data() + value.size())
      return absl::InvalidArgumentError(fmt::format("--test-hooks: '{}' is not NAME=NUMBER", item));
    if (key == "import") h.import_delay_ms = static_cast<int64_t>(v);
    else if (key == "assemble") h.assemble_delay_ms = static_cast<int64_t>(v);
    else if (key == "task") h.task_delay_ms = static_cast<int64_t>(v);
    else if (key == "enospc") h.enospc_after_bytes = v;
    else return absl::InvalidArgumentError(fmt::format("--test-hooks: unknown hook '{}' (import, assemble, task, enospc)", key));
  }
  return h;
}

}  // namespace sp
