#include "common/confined_path.h"

#include <filesystem>

#include "fmt/format.h"

namespace sp {

namespace fs = std::filesystem;

absl::StatusOr<std::string> resolve_under(const std::string& path, const std::string& root, const char* what) {
  std::error_code ec;
  const fs::path p = fs::weakly_canonical(fs::absolute(path), ec);
  if (ec) return absl::InvalidArgumentError(fmt::format("{} {}: {}", what, path, ec.message()));
  const fs::path r = fs::weakly_canonical(fs::absolute(root), ec);
  if (ec) return absl::InvalidArgumentError(fmt::format("root {}: {}", root, ec.message()));
  auto inside = [&r](const fs::path& q) {
    const auto rel = q.lexically_relative(r);
    return !rel.empty() && *rel.begin() != "..";
  };
  if (inside(p)) return p.string();
  if (inside(fs::absolute(path).lexically_normal()))  // inside as written: a link leads out
    return absl::PermissionDeniedError(fmt::format(
        "{} {} leads outside the coordinator's allowed root {} (through a symbolic link)", what, path, r.string()));
  return absl::PermissionDeniedError(
      fmt::format("{} {} is outside the coordinator's allowed root {}", what, path, r.string()));
}

absl::StatusOr<std::string> resolve_in(const std::string& dir, const std::string& name, const std::string& root,
                                       const char* what) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
    return absl::InvalidArgumentError(fmt::format("{} '{}' in {} is not a plain file name", what, name, dir));
  return resolve_under((fs::path(dir) / name).string(), root, what);
}

}  // namespace sp
