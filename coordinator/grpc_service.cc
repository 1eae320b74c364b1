#include "coordinator/grpc_service.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "fmt/format.h"
#include "common/token.h"
#include "proto/grpc_status.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT

namespace {
template <typename T>
grpc::Status reply(absl::StatusOr<T> r, T* out) {
  if (!r.ok()) return to_grpc(r.status());
  *out = std::move(*r);
  return grpc::Status::OK;
}
}  // namespace

grpc::Status CoordinatorApiService::SubmitJob(grpc::ServerContext* ctx, const SubmitJobRequest* req, JobStatus* resp) {
  return auth_->run(ctx, "SubmitJob", [&]() -> grpc::Status {
    return reply(c_->submit(req->spec()), resp);
  });
}
grpc::Status CoordinatorApiService::GetJob(grpc::ServerContext* ctx, const JobRef* req, JobStatus* resp) {
  return auth_->run(ctx, "GetJob", [&]() -> grpc::Status {
    return reply(c_->job_status(req->job_id()), resp);
  });
}
grpc::Status CoordinatorApiService::ListJobs(grpc::ServerContext* ctx, const ListJobsRequest*, ListJobsResponse* resp) {
  return auth_->run(ctx, "ListJobs", [&]() -> grpc::Status {
    for (auto& j : c_->list_jobs()) *resp->add_jobs() = std::move(j);
    return grpc::Status::OK;
  });
}
grpc::Status CoordinatorApiService::CancelJob(grpc::ServerContext* ctx, const JobRef* req, JobStatus* resp) {
  return auth_->run(ctx, "CancelJob", [&]() -> grpc::Status {
    return reply(c_->cancel(req->job_id()), resp);
  });
}
grpc::Status CoordinatorApiService::ResumeJob(grpc::ServerContext* ctx, const JobRef* req, JobStatus* resp) {
  return auth_->run(ctx, "ResumeJob", [&]() -> grpc::Status {
    return reply(c_->resume(req->job_id()), resp);
  });
}
grpc::Status CoordinatorApiService::ListWorkers(grpc::ServerContext* ctx, const ListWorkersRequest*,
                                                ListWorkersResponse* resp) {
  return auth_->run(ctx, "ListWorkers", [&]() -> grpc::Status {
    for (auto& w : c_->workers()) *resp->add_workers() = std::move(w);
    return grpc::Status::OK;
  });
}
grpc::Status CoordinatorApiService::ListEvents(grpc::ServerContext* ctx, const JobRef* req, ListEventsResponse* resp) {
  return auth_->run(ctx, "ListEvents", [&]() -> grpc::Status {
    auto ev = c_->events(req->job_id());
    if (!ev.ok()) return to_grpc(ev.status());
    for (auto& e : *ev) *resp->add_events() = std::move(e);
    return grpc::Status::OK;
  });
}

grpc::Status CoordinatorApiService::DeleteJob(grpc::ServerContext* ctx, const JobRef* req, JobStatus* resp) {
  return auth_->run(ctx, "DeleteJob", [&]() -> grpc::Status { return reply(c_->delete_job(req->job_id()), resp); });
}

grpc::Status WorkerApiService::Register(grpc::ServerContext* ctx, const RegisterRequest* req, RegisterResponse* resp) {
  return auth_->run(ctx, "Register", [&]() -> grpc::Status {
    return reply(c_->register_worker(*req), resp);
  });
}
grpc::Status WorkerApiService::Heartbeat(grpc::ServerContext* ctx, const HeartbeatRequest* req, HeartbeatResponse* resp) {
  return auth_->run(ctx, "Heartbeat", [&]() -> grpc::Status {
    if (req->leases_size() > 64) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "too many leases in a heartbeat");
    return reply(c_->heartbeat(*req), resp);
  });
}
grpc::Status WorkerApiService::LeaseTask(grpc::ServerContext* ctx, const LeaseRequest* req, LeaseResponse* resp) {
  return auth_->run(ctx, "LeaseTask", [&]() -> grpc::Status {
    return reply(c_->lease(*req), resp);
  });
}
grpc::Status WorkerApiService::CompleteTask(grpc::ServerContext* ctx, const CompleteRequest* req, CompleteResponse*) {
  return auth_->run(ctx, "CompleteTask", [&]() -> grpc::Status {
    return to_grpc(c_->complete(*req));
  });
}
grpc::Status WorkerApiService::FailTask(grpc::ServerContext* ctx, const FailRequest* req, FailResponse*) {
  return auth_->run(ctx, "FailTask", [&]() -> grpc::Status {
    return to_grpc(c_->fail(*req));
  });
}

grpc::Status WorkerApiService::FetchBlob(grpc::ServerContext* ctx, const FetchBlobRequest* req,
                                         grpc::ServerWriter<BlobChunk>* writer) {
  return auth_->run(ctx, "FetchBlob", [&]() -> grpc::Status {
    bool first = true;
    auto size = c_->blobs().size(req->digest());
    if (!size.ok()) return to_grpc(size.status());
    absl::Status st = c_->blobs().read(req->digest(), [&](std::span<const uint8_t> bytes) -> absl::Status {
      if (ctx->IsCancelled()) return absl::CancelledError("client went away");
      BlobChunk chunk;
      if (first) {
        chunk.set_digest(req->digest());
        chunk.set_total_size(*size);
        first = false;
      }
      chunk.set_data(bytes.data(), bytes.size());
      if (!writer->Write(chunk)) return absl::UnavailableError("stream closed");
      c_->metrics().blob_bytes_out += bytes.size();
      return absl::OkStatus();
    });
    if (st.ok() && first) {  // empty blob: still send the header
      BlobChunk chunk;
      chunk.set_digest(req->digest());
      chunk.set_total_size(0);
      writer->Write(chunk);
    }
    if (st.ok() && !req->worker_id().empty()) c_->note_worker_has(req->worker_id(), req->digest());
    return to_grpc(st);
  });
}

grpc::Status WorkerApiService::PutBlob(grpc::ServerContext* ctx, grpc::ServerReader<BlobChunk>* reader,
                                       PutBlobResponse* resp) {
  return auth_->run(ctx, "PutBlob", [&]() -> grpc::Status {
    BlobChunk chunk;
    if (!reader->Read(&chunk)) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty blob stream");
    if (chunk.digest().empty())
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first chunk must carry digest and total_size");
    const std::string digest = chunk.digest();
    if (digest.size() != 32 || digest.find_first_not_of("0123456789abcdef") != std::string::npos)
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the digest must be 32 lowercase hex digits");
    if (chunk.total_size() > kMaxBlobBytes)
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          fmt::format("blob of {} bytes is larger than the {} byte limit", chunk.total_size(), kMaxBlobBytes));
    auto have = c_->blobs().refresh(digest);
    if (!have.ok()) return to_grpc(have.status());
    if (*have) {
      resp->set_already_present(true);
      return grpc::Status::OK;  // the client may stop sending; the rest is discarded
    }
    // Unlogged: complete() makes the store durable before it records a result that uses it.
    auto w = c_->blobs().begin(digest, chunk.total_size(), BlobStore::Durability::kUnlogged);
    do {
      if (!chunk.digest().empty() && chunk.digest() != digest)
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "digest changed within one blob stream");
      if (chunk.data().size() > kBlobChunkBytes)
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            fmt::format("chunk of {} bytes; the limit is {}", chunk.data().size(), kBlobChunkBytes));
      auto st = w->append({reinterpret_cast<const uint8_t*>(chunk.data().data()), chunk.data().size()});
      if (!st.ok()) return to_grpc(st);
      c_->metrics().blob_bytes_in += chunk.data().size();
    } while (reader->Read(&chunk));
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    return to_grpc(w->finish());
  });
}

grpc::Status Authenticator::run(const grpc::ServerContext* ctx, const char* rpc,
                                const std::function<grpc::Status()>& handler) const {
  if (auto a = check(ctx); !a.ok()) return a;
  try {
    return handler();
  } catch (const std::bad_alloc&) {
    c_->log(fmt::format("{}: out of memory handling the call", rpc));
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        fmt::format("{}: the coordinator ran out of memory handling this call", rpc));
  } catch (const std::exception& e) {
    c_->log(fmt::format("{}: internal error: {}", rpc, e.what()));
    return grpc::Status(grpc::StatusCode::INTERNAL, fmt::format("{}: internal error in the coordinator: {}", rpc, e.what()));
  }
}

grpc::Status Authenticator::check(const grpc::ServerContext* ctx) const {
  if (token_.empty()) return grpc::Status::OK;
  const auto& md = ctx->client_metadata();
  auto it = md.find(kAuthMetadataKey);
  const std::string_view got = it == md.end() ? std::string_view() : std::string_view(it->second.data(), it->second.size());
  if (constant_time_equal(got, bearer(token_))) return grpc::Status::OK;
  c_->metrics().auth_failures++;
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      it == md.end() ? "no token: this coordinator requires one (--token-file)"
                                     : "wrong token (check --token-file)");
}

absl::Status check_address_free(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return absl::InvalidArgumentError(fmt::format("listen address '{}' has no port", listen));
  std::string host = listen.substr(0, colon);
  const std::string port_text = listen.substr(colon + 1);
  char* end = nullptr;
  const long port = std::strtol(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port < 0 || port > 65535)
    return absl::InvalidArgumentError(fmt::format("listen address '{}': '{}' is not a port", listen, port_text));
  if (port == 0) return absl::OkStatus();
  if (host == "localhost") host = "127.0.0.1";
  if (host.empty() || host == "*") host = "0.0.0.0";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return absl::OkStatus();  // IPv6 or a name: gRPC decides
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::OkStatus();
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int err = errno;
  ::close(fd);
  if (rc == 0) return absl::OkStatus();
  if (err == EADDRINUSE)
    return absl::FailedPreconditionError(
        fmt::format("cannot listen on {}: the address is in use (another coordinator running there?)", listen));
  return absl::InvalidArgumentError(fmt::format("cannot listen on {}: {}", listen, std::strerror(err)));
}

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::start(
    Coordinator* c, const std::string& listen, const std::string& token,
    std::shared_ptr<grpc::ServerCredentials> credentials) {
  auto s = std::make_unique<CoordinatorServer>();
  s->auth_ = std::make_unique<Authenticator>(token, c);
  s->api_ = std::make_unique<CoordinatorApiService>(c, s->auth_.get());
  s->worker_api_ = std::make_unique<WorkerApiService>(c, s->auth_.get());
  SP_RETURN_IF_ERROR(check_address_free(listen));
  grpc::ServerBuilder b;
  // gRPC sets SO_REUSEPORT by default: a second server on a busy port would start beside
  // the first and split the clients between them at random.
  b.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int port = 0;
  b.AddListeningPort(listen, credentials ? credentials : grpc::InsecureServerCredentials(), &port);
  b.RegisterService(s->api_.get());
  b.RegisterService(s->worker_api_.get());
  b.SetMaxReceiveMessageSize(kMaxMessageBytes);
  // Bounded resources: a slow or hostile client cannot pile up streams or threads.
  b.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams);
  grpc::ResourceQuota quota("shardpress-coordinator");
  quota.SetMaxThreads(kMaxServerThreads);
  b.SetResourceQuota(quota);
  b.SetMaxSendMessageSize(kMaxMessageBytes);
  b.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 << 20);
  b.AddChannelArgument(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, 16 << 20);
  s->server_ = b.BuildAndStart();
  if (!s->server_ || port == 0)
    return absl::FailedPreconditionError(fmt::format("cannot listen on {} (address in use or invalid?)", listen));
  s->address_ = listen.substr(0, listen.rfind(':')) + ":" + std::to_string(port);
  return s;
}

CoordinatorServer::~CoordinatorServer() { shutdown(); }

void CoordinatorServer::shutdown() {
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
    server_.reset();
  }
}

}  // namespace sp
