// The one place where absl::Status and grpc::Status convert into each other (same
// codes, same message).
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace sp {

inline grpc::Status to_grpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

inline absl::Status from_grpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

}  // namespace sp
