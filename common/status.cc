#include "common/status.h"

#include <string>

namespace sp {

absl::Status annotate(const absl::Status& status, std::string_view prefix) {
  if (status.ok()) return status;
  std::string msg(prefix);
  msg += ": ";
  msg += std::string(status.message());
  return absl::Status(status.code(), msg);
}

}  // namespace sp
