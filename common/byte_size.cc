#include "common/byte_size.h"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <string>

#include "fmt/format.h"

namespace sp {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

absl::StatusOr<uint64_t> parse_byte_size(std::string_view text) {
  const std::string original(text);
  text = trim(text);
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  const std::string_view number = text.substr(0, i);
  std::string unit = lower(trim(text.substr(i)));
  double value = 0;
  auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (number.empty() || ec != std::errc() || ptr != number.data() + number.size())
    return absl::InvalidArgumentError("'" + original + "' is not a byte size (e.g. 11GiB, 512MiB, 4096)");
  struct Unit { std::string_view name; double factor; };
  static constexpr std::array<Unit, 14> kUnits = {{
      {"", 1}, {"b", 1},
      {"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
      {"kib", 1024.0}, {"mib", 1048576.0}, {"gib", 1073741824.0}, {"tib", 1099511627776.0},
      {"k", 1024.0}, {"m", 1048576.0}, {"g", 1073741824.0}, {"t", 1099511627776.0},
  }};
  for (const auto& u : kUnits) {
    if (u.name == unit) {
      const double bytes = std::floor(value * u.factor);
      if (!(bytes < 1.8e19)) return absl::InvalidArgumentError("'" + original + "' is too large");
      return static_cast<uint64_t>(bytes);
    }
  }
  return absl::InvalidArgumentError("'" + original +
                                    "': unknown unit (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)");
}

std::string format_bytes(uint64_t bytes) {
  static constexpr std::array<const char*, 5> kNames = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  size_t u = 0;
  while (v >= 1024.0 && u + 1 < kNames.size()) {
    v /= 1024.0;
    ++u;
  }
  if (u == 0) return fmt::format("{} B", bytes);
  return fmt::format("{:.2f} {}", v, kNames[u]);
}

std::string format_count(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace sp
