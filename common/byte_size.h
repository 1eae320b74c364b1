// Human byte sizes: "11GiB", "512MiB", "1.5GB", "4096".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sp {

// Parses a size with an optional unit: B, KB/MB/GB/TB (powers of 1000), KiB/MiB/GiB/TiB
// (powers of 1024), also K/M/G/T (= KiB...). Case-insensitive, optional space.
absl::StatusOr<uint64_t> parse_byte_size(std::string_view text);

// "1.50 GiB", "512 B".
std::string format_bytes(uint64_t bytes);

// "1,234,567".
std::string format_count(uint64_t n);

}  // namespace sp
