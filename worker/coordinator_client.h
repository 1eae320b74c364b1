// The worker's side of the WorkerApi: one call per method, each with a deadline, plus
// blob streaming into the cache and out of memory.
//
// Thread-safety: safe for concurrent use (gRPC stubs are).
#pragma once

#include <memory>
#include <span>
#include <string>

#include "common/status.h"
#include "shardpress.grpc.pb.h"
#include "worker/blob_cache.h"
#include <grpcpp/security/credentials.h>

namespace sp {

class CoordinatorClient {
 public:
  // `token`: sent on every call when non-empty; `credentials`: TLS (null: plain TCP).
  explicit CoordinatorClient(const std::string& address, std::string token = "",
                             std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr,
                             int64_t rpc_timeout_ms = 10'000);

  absl::StatusOr<shardpress::v1::RegisterResponse> register_worker(const shardpress::v1::RegisterRequest& r);
  absl::StatusOr<shardpress::v1::HeartbeatResponse> heartbeat(const shardpress::v1::HeartbeatRequest& r);
  absl::StatusOr<shardpress::v1::LeaseResponse> lease(const shardpress::v1::LeaseRequest& r);
  absl::Status complete(const shardpress::v1::CompleteRequest& r);
  absl::Status fail(const shardpress::v1::FailRequest& r);
  // Streams blob `digest` into the cache (checked against the digest on arrival).
  absl::Status fetch(const std::string& digest, const std::string& worker_id, BlobCache& cache);
  // Uploads `bytes` as blob `digest` in 4 MiB chunks (a no-op if the coordinator has it).
  absl::Status put(const std::string& digest, std::span<const uint8_t> bytes);

 private:
  void prepare(grpc::ClientContext& ctx, int64_t timeout_ms) const;
  std::unique_ptr<shardpress::v1::WorkerApi::Stub> stub_;
  std::string token_;
  int64_t rpc_timeout_ms_;
};

}  // namespace sp
