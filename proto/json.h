// Our messages as JSON for scripts (`-o json`) and, later, the status page's API: proto
// field names, every field present (defaults included), enums by name — and 64-bit
// integers as JSON numbers (protobuf's own printer writes them as strings, which `jq`
// and most scripts then compare as text).
#pragma once

#include <google/protobuf/message.h>

#include <string>

#include "nlohmann/json.hpp"

namespace sp {

nlohmann::ordered_json to_json_value(const google::protobuf::Message& m);
// Indented text of to_json_value.
std::string to_json(const google::protobuf::Message& m);

}  // namespace sp
