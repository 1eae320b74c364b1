// Confinement: a daemon opens files on behalf of remote users only inside the folders it
// was given (--model-root, --output-root). Every path is resolved — symlinks followed as
// far as it exists — and checked *before* anything is opened, so a file that leads
// outside is never read, and no error can quote its bytes. Errors name the path as given
// (not where a link leads) and the root.
#pragma once

#include <string>

#include "common/status.h"

namespace sp {

// The root that confines nothing: the CLI reads what its user can read.
inline constexpr const char* kAnyRoot = "/";

// `path` resolved and checked to lie in `root` (PERMISSION_DENIED when it does not;
// INVALID_ARGUMENT when it cannot be resolved). `what` names it in errors ("model",
// "weight file").
absl::StatusOr<std::string> resolve_under(const std::string& path, const std::string& root, const char* what);

// Like resolve_under for a file inside folder `dir` (config.json, a weight file), whose
// `name` must be a plain file name; the result is the file to open.
absl::StatusOr<std::string> resolve_in(const std::string& dir, const std::string& name, const std::string& root,
                                       const char* what);

}  // namespace sp
