#include "coordinator/config_file.h"

#include <yaml-cpp/yaml.h>

#include "fmt/format.h"

namespace sp {

absl::Status load_config_file(const std::string& path, const std::map<std::string, std::string*>& keys) {
  YAML::Node y;
  try {
    y = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(fmt::format("{}: {}", path, e.what()));
  }
  if (!y.IsMap()) return absl::InvalidArgumentError(fmt::format("{}: expected a mapping of settings", path));
  for (const auto& kv : y) {
    const std::string key = kv.first.as<std::string>();
    auto it = keys.find(key);
    if (it == keys.end()) {
      std::string allowed;
      for (const auto& [k, _] : keys) allowed += (allowed.empty() ? "" : ", ") + k;
      return absl::InvalidArgumentError(fmt::format("{}: unknown key '{}' (allowed: {})", path, key, allowed));
    }
    if (!kv.second.IsScalar())
      return absl::InvalidArgumentError(fmt::format("{}: '{}' must be a single value", path, key));
    *it->second = kv.second.Scalar();
  }
  return absl::OkStatus();
}

std::string config_path_from_args(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--config") return argv[i + 1];
  return "";
}

}  // namespace sp
