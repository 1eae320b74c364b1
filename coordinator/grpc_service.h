// gRPC handlers: glue only. Each converts the request, calls one Coordinator method and
// converts back; business logic lives in Coordinator.
#pragma once

#include <functional>
#include <memory>

#include "coordinator/coordinator.h"
#include "shardpress.grpc.pb.h"

namespace sp {

// What every handler does first and last: checks the shared token (a no-op when the
// coordinator has none), and turns anything the handler throws into an error reply and a
// log line — one bad call never takes the coordinator down.
class Authenticator {
 public:
  Authenticator(std::string token, Coordinator* c) : token_(std::move(token)), c_(c) {}
  // The token check, then `handler`; `rpc` names the call in errors and the log.
  grpc::Status run(const grpc::ServerContext* ctx, const char* rpc, const std::function<grpc::Status()>& handler) const;
  // UNAUTHENTICATED (and counted in /metrics) for a missing or wrong token.
  grpc::Status check(const grpc::ServerContext* ctx) const;

 private:
  std::string token_;
  Coordinator* c_;
};

class CoordinatorApiService final : public shardpress::v1::CoordinatorApi::Service {
 public:
  CoordinatorApiService(Coordinator* c, const Authenticator* auth) : c_(c), auth_(auth) {}
  grpc::Status SubmitJob(grpc::ServerContext*, const shardpress::v1::SubmitJobRequest*,
                         shardpress::v1::JobStatus*) override;
  grpc::Status GetJob(grpc::ServerContext*, const shardpress::v1::JobRef*, shardpress::v1::JobStatus*) override;
  grpc::Status ListJobs(grpc::ServerContext*, const shardpress::v1::ListJobsRequest*,
                        shardpress::v1::ListJobsResponse*) override;
  grpc::Status CancelJob(grpc::ServerContext*, const shardpress::v1::JobRef*, shardpress::v1::JobStatus*) override;
  grpc::Status ResumeJob(grpc::ServerContext*, const shardpress::v1::JobRef*, shardpress::v1::JobStatus*) override;
  grpc::Status ListWorkers(grpc::ServerContext*, const shardpress::v1::ListWorkersRequest*,
                           shardpress::v1::ListWorkersResponse*) override;
  grpc::Status ListEvents(grpc::ServerContext*, const shardpress::v1::JobRef*,
                          shardpress::v1::ListEventsResponse*) override;
  grpc::Status DeleteJob(grpc::ServerContext*, const shardpress::v1::JobRef*, shardpress::v1::JobStatus*) override;

 private:
  Coordinator* c_;
  const Authenticator* auth_;
};

class WorkerApiService final : public shardpress::v1::WorkerApi::Service {
 public:
  WorkerApiService(Coordinator* c, const Authenticator* auth) : c_(c), auth_(auth) {}
  grpc::Status Register(grpc::ServerContext*, const shardpress::v1::RegisterRequest*,
                        shardpress::v1::RegisterResponse*) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const shardpress::v1::HeartbeatRequest*,
                         shardpress::v1::HeartbeatResponse*) override;
  grpc::Status LeaseTask(grpc::ServerContext*, const shardpress::v1::LeaseRequest*,
                         shardpress::v1::LeaseResponse*) override;
  grpc::Status CompleteTask(grpc::ServerContext*, const shardpress::v1::CompleteRequest*,
                            shardpress::v1::CompleteResponse*) override;
  grpc::Status FailTask(grpc::ServerContext*, const shardpress::v1::FailRequest*,
                        shardpress::v1::FailResponse*) override;
  grpc::Status FetchBlob(grpc::ServerContext*, const shardpress::v1::FetchBlobRequest*,
                         grpc::ServerWriter<shardpress::v1::BlobChunk>*) override;
  grpc::Status PutBlob(grpc::ServerContext*, grpc::ServerReader<shardpress::v1::BlobChunk>*,
                       shardpress::v1::PutBlobResponse*) override;

 private:
  Coordinator* c_;
  const Authenticator* auth_;
};

// A running gRPC server for both services.
class CoordinatorServer {
 public:
  // Binds `listen` ("127.0.0.1:7070"; port 0 picks a free one). A non-empty `token` is
  // required on every call.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> start(
      Coordinator* c, const std::string& listen, const std::string& token = "",
      std::shared_ptr<grpc::ServerCredentials> credentials = nullptr);
  ~CoordinatorServer();
  // "127.0.0.1:PORT" as bound.
  const std::string& address() const { return address_; }
  void shutdown();

 private:
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<CoordinatorApiService> api_;
  std::unique_ptr<WorkerApiService> worker_api_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

// Whether `listen` (HOST:PORT; an IPv4 address or localhost) is free, asked before
// anything else starts: binds a probe socket the way gRPC does (SO_REUSEADDR, so a port
// in TIME_WAIT after a restart counts as free) and closes it. FAILED_PRECONDITION when
// another process listens there; INVALID_ARGUMENT for a malformed address.
absl::Status check_address_free(const std::string& listen);

// Messages up to this size (blob chunks are 4 MiB).
inline constexpr int kMaxMessageBytes = 16 << 20;
// One blob (a tensor or a result) at most; the largest EXAONE-32B tensor is 1 GB.
inline constexpr uint64_t kMaxBlobBytes = 64ull << 30;
inline constexpr int kMaxConcurrentStreams = 32;  // per connection
inline constexpr int kMaxServerThreads = 64;

}  // namespace sp
