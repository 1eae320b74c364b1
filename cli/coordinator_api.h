// The CLI's client of the CoordinatorApi: one call per RPC, each with a deadline. An
// unreachable coordinator is UNAVAILABLE (the CLI exits 3).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include <grpcpp/security/credentials.h>

#include "shardpress.grpc.pb.h"

namespace sp::cli {

// --coordinator, else $SHARDPRESS_COORDINATOR, else 127.0.0.1:7070.
std::string coordinator_address(const std::string& flag);

class CoordinatorApiClient {
 public:
  // `token`: sent on every call when non-empty; `credentials`: TLS (null: plain TCP).
  CoordinatorApiClient(const std::string& address, std::string token,
                       std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);
  const std::string& address() const { return address_; }

  absl::StatusOr<shardpress::v1::JobStatus> submit(const shardpress::v1::JobSpec& spec);
  absl::StatusOr<shardpress::v1::JobStatus> get(const std::string& job);
  absl::StatusOr<std::vector<shardpress::v1::JobStatus>> list();
  absl::StatusOr<shardpress::v1::JobStatus> cancel(const std::string& job);
  absl::StatusOr<shardpress::v1::JobStatus> resume(const std::string& job);
  absl::StatusOr<shardpress::v1::JobStatus> remove(const std::string& job);
  absl::StatusOr<std::vector<shardpress::v1::WorkerInfo>> workers();
  absl::StatusOr<std::vector<shardpress::v1::EventRecord>> events(const std::string& job);

 private:
  std::string address_;
  std::string token_;
  std::unique_ptr<shardpress::v1::CoordinatorApi::Stub> stub_;
};

// --token-file, else $SHARDPRESS_TOKEN_FILE; the token in it, or "" when neither is set.
absl::StatusOr<std::string> client_token(const std::string& flag);

// Prints the error and returns the exit code: 3 when the coordinator cannot be reached,
// 2 when it refuses the token.
int report_rpc_error(const absl::Status& s, const std::string& address);

}  // namespace sp::cli
