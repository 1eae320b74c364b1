#include "common/yaml_keys.h"

#include <map>
#include <string>

#include "fmt/format.h"

namespace sp {

namespace {

absl::Status check(const YAML::Node& node, const std::string& where, std::string_view label, int depth) {
  if (depth > 64) return absl::InvalidArgumentError(fmt::format("{}: nested too deeply", label));
  if (node.IsSequence()) {
    for (const auto& item : node) SP_RETURN_IF_ERROR(check(item, where, label, depth + 1));
    return absl::OkStatus();
  }
  if (!node.IsMap()) return absl::OkStatus();
  std::map<std::string, int> lines;
  for (const auto& kv : node) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
    const std::string path = where.empty() ? key : where + "." + key;
    const int line = kv.first.Mark().line + 1;
    if (kv.first.IsScalar()) {
      auto [it, fresh] = lines.emplace(key, line);
      if (!fresh)
        return absl::InvalidArgumentError(
            fmt::format("{}: key '{}' appears twice (lines {} and {}); give it once", label, path, it->second, line));
    }
    SP_RETURN_IF_ERROR(check(kv.second, path, label, depth + 1));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status check_unique_keys(const YAML::Node& node, std::string_view label) { return check(node, "", label, 0); }

}  // namespace sp
