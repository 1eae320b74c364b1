// Error handling for shardpress: errors cross module boundaries as absl::Status /
// absl::StatusOr<T> values, with codes chosen for what the caller should do
// (INVALID_ARGUMENT: bad input, DATA_LOSS: corrupt bytes, NOT_FOUND, FAILED_PRECONDITION,
// UNAVAILABLE: retry, ABORTED: lease lost). Messages name the file, key or tensor.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SP_CONCAT_INNER(a, b) a##b
#define SP_CONCAT(a, b) SP_CONCAT_INNER(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define SP_RETURN_IF_ERROR(expr)                 \
  do {                                           \
    ::absl::Status sp_status_ = (expr);          \
    if (!sp_status_.ok()) return sp_status_;     \
  } while (0)

// `lhs = value of expr` (an absl::StatusOr<T>), or returns its error.
#define SP_ASSIGN_OR_RETURN(lhs, expr) \
  SP_ASSIGN_OR_RETURN_IMPL(SP_CONCAT(sp_statusor_, __LINE__), lhs, expr)
#define SP_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

namespace sp {

// Returns `status` with `prefix + ": "` put in front of its message, same code.
absl::Status annotate(const absl::Status& status, std::string_view prefix);

}  // namespace sp
