#include "common/token.h"

#include "common/file_util.h"

#include <algorithm>
#include <cctype>

namespace sp {

absl::StatusOr<std::string> read_token_file(const std::string& path) {
  auto text = read_file(path);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) return absl::NotFoundError(path + ": token file not found");
    return absl::InvalidArgumentError(path + ": cannot read the token file");
  }
  std::string t = *text;
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
  size_t i = 0;
  while (i < t.size() && std::isspace(static_cast<unsigned char>(t[i]))) ++i;
  t.erase(0, i);
  if (t.size() < 16)
    return absl::InvalidArgumentError(path + ": the token must be at least 16 characters (e.g. openssl rand -hex 32)");
  for (char c : t)
    if (c < 0x21 || c > 0x7e) return absl::InvalidArgumentError(path + ": the token must be printable ASCII without spaces");
  return t;
}

std::string bearer(std::string_view token) { return "Bearer " + std::string(token); }

bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

}  // namespace sp
