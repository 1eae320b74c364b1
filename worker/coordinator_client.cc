#include "worker/coordinator_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "fmt/format.h"
#include "common/token.h"
#include "proto/grpc_status.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT

namespace {

constexpr size_t kChunk = 4 << 20;
constexpr int kMaxMessage = 16 << 20;
constexpr int64_t kStreamTimeoutMs = 30 * 60 * 1000;  // one blob (up to a few GB)

void deadline(grpc::ClientContext& ctx, int64_t ms) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(ms));
}

}  // namespace

CoordinatorClient::CoordinatorClient(const std::string& address, std::string token,
                                     std::shared_ptr<grpc::ChannelCredentials> credentials, int64_t rpc_timeout_ms)
    : token_(std::move(token)), rpc_timeout_ms_(rpc_timeout_ms) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessage);
  args.SetMaxSendMessageSize(kMaxMessage);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // Large flow-control window and frames: blobs stream at memory speed on a LAN.
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 << 20);
  args.SetInt(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, 16 << 20);
  stub_ = WorkerApi::NewStub(
      grpc::CreateCustomChannel(address, credentials ? credentials : grpc::InsecureChannelCredentials(), args));
}

void CoordinatorClient::prepare(grpc::ClientContext& ctx, int64_t timeout_ms) const {
  deadline(ctx, timeout_ms);
  if (!token_.empty()) ctx.AddMetadata(kAuthMetadataKey, bearer(token_));
}

#define SP_UNARY(Method, Req, Resp, call)                \
  grpc::ClientContext ctx;                                \
  prepare(ctx, rpc_timeout_ms_);                          \
  Resp resp;                                              \
  grpc::Status st = stub_->Method(&ctx, call, &resp);

absl::StatusOr<RegisterResponse> CoordinatorClient::register_worker(const RegisterRequest& r) {
  SP_UNARY(Register, RegisterRequest, RegisterResponse, r);
  if (!st.ok()) return from_grpc(st);
  return resp;
}

absl::StatusOr<HeartbeatResponse> CoordinatorClient::heartbeat(const HeartbeatRequest& r) {
  SP_UNARY(Heartbeat, HeartbeatRequest, HeartbeatResponse, r);
  if (!st.ok()) return from_grpc(st);
  return resp;
}

absl::StatusOr<LeaseResponse> CoordinatorClient::lease(const LeaseRequest& r) {
  SP_UNARY(LeaseTask, LeaseRequest, LeaseResponse, r);
  if (!st.ok()) return from_grpc(st);
  return resp;
}

absl::Status CoordinatorClient::complete(const CompleteRequest& r) {
  SP_UNARY(CompleteTask, CompleteRequest, CompleteResponse, r);
  return from_grpc(st);
}

absl::Status CoordinatorClient::fail(const FailRequest& r) {
  SP_UNARY(FailTask, FailRequest, FailResponse, r);
  return from_grpc(st);
}

#undef SP_UNARY

absl::Status CoordinatorClient::fetch(const std::string& digest, const std::string& worker_id, BlobCache& cache) {
  return cache.insert(digest, [&](const std::function<absl::Status(std::span<const uint8_t>)>& sink) -> absl::Status {
    grpc::ClientContext ctx;
    prepare(ctx, kStreamTimeoutMs);
    FetchBlobRequest req;
    req.set_digest(digest);
    req.set_worker_id(worker_id);
    auto reader = stub_->FetchBlob(&ctx, req);
    BlobChunk chunk;
    absl::Status inner;
    while (reader->Read(&chunk)) {
      inner = sink({reinterpret_cast<const uint8_t*>(chunk.data().data()), chunk.data().size()});
      if (!inner.ok()) {
        ctx.TryCancel();
        break;
      }
    }
    grpc::Status st = reader->Finish();
    if (!inner.ok()) return inner;
    return from_grpc(st);
  });
}

absl::Status CoordinatorClient::put(const std::string& digest, std::span<const uint8_t> bytes) {
  grpc::ClientContext ctx;
  prepare(ctx, kStreamTimeoutMs);
  PutBlobResponse resp;
  auto writer = stub_->PutBlob(&ctx, &resp);
  size_t off = 0;
  bool first = true;
  do {
    BlobChunk c;
    if (first) {
      c.set_digest(digest);
      c.set_total_size(bytes.size());
      first = false;
    }
    const size_t n = std::min(kChunk, bytes.size() - off);
    c.set_data(bytes.data() + off, n);
    off += n;
    if (!writer->Write(c)) break;  // the server answered early (already present) or failed
  } while (off < bytes.size());
  writer->WritesDone();
  return from_grpc(writer->Finish());
}

}  // namespace sp
