#include "cli/coordinator_api.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "cli/output.h"
#include "common/token.h"
#include "proto/grpc_status.h"

namespace sp::cli {

using namespace shardpress::v1;  // NOLINT

std::string coordinator_address(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("SHARDPRESS_COORDINATOR"); env && *env) return env;
  return "127.0.0.1:7070";
}

absl::StatusOr<std::string> client_token(const std::string& flag) {
  std::string path = flag;
  if (path.empty())
    if (const char* env = std::getenv("SHARDPRESS_TOKEN_FILE"); env && *env) path = env;
  if (path.empty()) return std::string();
  return read_token_file(path);
}

CoordinatorApiClient::CoordinatorApiClient(const std::string& address, std::string token,
                                           std::shared_ptr<grpc::ChannelCredentials> credentials)
    : address_(address), token_(std::move(token)) {
  stub_ = CoordinatorApi::NewStub(
      grpc::CreateChannel(address, credentials ? credentials : grpc::InsecureChannelCredentials()));
}

namespace {
constexpr int64_t kTimeoutMs = 15'000;

template <typename Resp, typename Call>
absl::StatusOr<Resp> call(const std::string& token, Call&& c) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(kTimeoutMs));
  if (!token.empty()) ctx.AddMetadata(kAuthMetadataKey, bearer(token));
  Resp resp;
  grpc::Status st = c(&ctx, &resp);
  if (!st.ok()) return from_grpc(st);
  return resp;
}

JobRef ref(const std::string& job) {
  JobRef r;
  r.set_job_id(job);
  return r;
}
}  // namespace

absl::StatusOr<JobStatus> CoordinatorApiClient::submit(const JobSpec& spec) {
  SubmitJobRequest req;
  *req.mutable_spec() = spec;
  return call<JobStatus>(token_, [&](auto* ctx, auto* resp) { return stub_->SubmitJob(ctx, req, resp); });
}
absl::StatusOr<JobStatus> CoordinatorApiClient::get(const std::string& job) {
  return call<JobStatus>(token_, [&](auto* ctx, auto* resp) { return stub_->GetJob(ctx, ref(job), resp); });
}
absl::StatusOr<std::vector<JobStatus>> CoordinatorApiClient::list() {
  auto r = call<ListJobsResponse>(token_, [&](auto* ctx, auto* resp) { return stub_->ListJobs(ctx, ListJobsRequest(), resp); });
  if (!r.ok()) return r.status();
  return std::vector<JobStatus>(r->jobs().begin(), r->jobs().end());
}
absl::StatusOr<JobStatus> CoordinatorApiClient::cancel(const std::string& job) {
  return call<JobStatus>(token_, [&](auto* ctx, auto* resp) { return stub_->CancelJob(ctx, ref(job), resp); });
}
absl::StatusOr<JobStatus> CoordinatorApiClient::resume(const std::string& job) {
  return call<JobStatus>(token_, [&](auto* ctx, auto* resp) { return stub_->ResumeJob(ctx, ref(job), resp); });
}
absl::StatusOr<JobStatus> CoordinatorApiClient::remove(const std::string& job) {
  return call<JobStatus>(token_, [&](auto* ctx, auto* resp) { return stub_->DeleteJob(ctx, ref(job), resp); });
}
absl::StatusOr<std::vector<WorkerInfo>> CoordinatorApiClient::workers() {
  auto r = call<ListWorkersResponse>(token_, 
      [&](auto* ctx, auto* resp) { return stub_->ListWorkers(ctx, ListWorkersRequest(), resp); });
  if (!r.ok()) return r.status();
  return std::vector<WorkerInfo>(r->workers().begin(), r->workers().end());
}
absl::StatusOr<std::vector<EventRecord>> CoordinatorApiClient::events(const std::string& job) {
  auto r = call<ListEventsResponse>(token_, [&](auto* ctx, auto* resp) { return stub_->ListEvents(ctx, ref(job), resp); });
  if (!r.ok()) return r.status();
  return std::vector<EventRecord>(r->events().begin(), r->events().end());
}

int report_rpc_error(const absl::Status& s, const std::string& address) {
  if (absl::IsUnauthenticated(s)) {
    std::fprintf(stderr, "shardpress: the coordinator at %s refused this call: %s\n", address.c_str(),
                 std::string(s.message()).c_str());
    return kExitBadInput;
  }
  if (absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) {
    std::fprintf(stderr, "shardpress: cannot reach the coordinator at %s: %s\n", address.c_str(),
                 std::string(s.message()).c_str());
    return kExitUnreachable;
  }
  return report_error(s);
}

}  // namespace sp::cli
