// Daemon config files: a flat YAML mapping of settings, read before the flags so that
// every key can be overridden by its flag.
#pragma once

#include <map>
#include <string>

#include "common/status.h"

namespace sp {

// Reads `path` and stores each value (as text) in the target its key maps to. Unknown
// keys and non-scalar values are INVALID_ARGUMENT errors naming the file and key.
absl::Status load_config_file(const std::string& path, const std::map<std::string, std::string*>& keys);

// Same, from YAML text (`label` names it in errors). Pure: no I/O.
absl::Status parse_config_text(std::string_view text, const std::string& label,
                               const std::map<std::string, std::string*>& keys);

// The value of `--config` in argv, if given (looked up before the real flag parse).
std::string config_path_from_args(int argc, char** argv);

}  // namespace sp
