// The shared secret that authenticates every RPC: read from a file, sent as gRPC
// metadata "authorization: Bearer <token>", compared in constant time. The token itself
// never appears in messages, logs or status output.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace sp {

inline constexpr const char* kAuthMetadataKey = "authorization";

// Reads a token file (surrounding whitespace trimmed). INVALID_ARGUMENT if it is empty or
// shorter than 16 characters; NOT_FOUND if missing.
absl::StatusOr<std::string> read_token_file(const std::string& path);

// "Bearer <token>".
std::string bearer(std::string_view token);

// Equality whose running time does not depend on where the inputs differ.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace sp
