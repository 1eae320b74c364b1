#include "common/log_line.h"

#include <chrono>
#include <ctime>
#include <string>

namespace sp {

void log_line(std::FILE* out, std::string_view program, std::string_view message) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const int ms = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
  const std::string line =
      std::string(stamp) + "." + std::to_string(1000 + ms).substr(1) + " " + std::string(program) + ": " +
      std::string(message) + "\n";
  std::fputs(line.c_str(), out);
  std::fflush(out);
}

}  // namespace sp
