// Daemon log lines: "2026-12-06 04:24:36.123 PROGRAM: MESSAGE", written whole (one
// fprintf per line, so lines from several threads do not interleave).
#pragma once

#include <cstdio>
#include <string_view>

namespace sp {

void log_line(std::FILE* out, std::string_view program, std::string_view message);

}  // namespace sp
