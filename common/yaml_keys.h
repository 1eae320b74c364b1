// YAML mappings whose keys appear once: yaml-cpp keeps a key written twice and lookups
// return the first, so `quantize:` given twice would silently drop the second. Job specs
// and daemon configs both refuse it.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string_view>

#include "common/status.h"

namespace sp {

// INVALID_ARGUMENT naming the key (with its section) and both lines when a key of `node`,
// or of any mapping inside it, appears twice: "job.yaml: key 'prune.sparsity' appears
// twice (lines 3 and 5)".
absl::Status check_unique_keys(const YAML::Node& node, std::string_view label);

}  // namespace sp
