#include "common/config_file.h"

#include <yaml-cpp/yaml.h>

#include "common/file_util.h"
#include "common/yaml_keys.h"
#include "fmt/format.h"

namespace sp {

absl::Status load_config_file(const std::string& path, const std::map<std::string, std::string*>& keys) {
  auto text = read_file(path);
  if (!text.ok()) return absl::NotFoundError(fmt::format("{}: cannot read the config file", path));
  return parse_config_text(*text, path, keys);
}

absl::Status parse_config_text(std::string_view text, const std::string& path,
                               const std::map<std::string, std::string*>& keys) {
  YAML::Node y;
  try {
    y = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(fmt::format("{}: {}", path, e.what()));
  }
  if (!y.IsMap()) return absl::InvalidArgumentError(fmt::format("{}: expected a mapping of settings", path));
  try {
  SP_RETURN_IF_ERROR(check_unique_keys(y, path));
  for (const auto& kv : y) {
    if (!kv.first.IsScalar()) return absl::InvalidArgumentError(fmt::format("{}: keys must be plain names", path));
    const std::string key = kv.first.Scalar();
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
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(fmt::format("{}: {}", path, e.what()));
  }
  return absl::OkStatus();
}

std::string config_path_from_args(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--config") return argv[i + 1];
  return "";
}

}  // namespace sp
