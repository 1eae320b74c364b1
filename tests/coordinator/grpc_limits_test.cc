// Bounded resources at the gRPC boundary: oversized blobs and chunks, bad digests and
// oversized heartbeats are refused; the service keeps serving.
#include <grpcpp/grpcpp.h>

#include "common/digest.h"
#include "coordinator/grpc_service.h"
#include "coordinator/runtime.h"
#include "fmt/format.h"
#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

using namespace shardpress::v1;  // NOLINT

class GrpcLimits : public ::testing::Test {
 protected:
  void SetUp() override {
    RuntimeOptions o;
    o.listen = "127.0.0.1:0";
    o.core.data_dir = dir_ / "state";
    auto rt = CoordinatorRuntime::start(o, clock_);
    ASSERT_TRUE(rt.ok()) << rt.status();
    rt_ = std::move(*rt);
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(64 << 20);
    stub_ = WorkerApi::NewStub(grpc::CreateCustomChannel(rt_->address(), grpc::InsecureChannelCredentials(), args));
  }
  grpc::Status put(const std::vector<BlobChunk>& chunks) {
    grpc::ClientContext ctx;
    PutBlobResponse resp;
    auto w = stub_->PutBlob(&ctx, &resp);
    for (const auto& c : chunks)
      if (!w->Write(c)) break;
    w->WritesDone();
    return w->Finish();
  }
  test::TempDir dir_;
  SystemClock clock_;
  std::unique_ptr<CoordinatorRuntime> rt_;
  std::unique_ptr<WorkerApi::Stub> stub_;
};

TEST_F(GrpcLimits, RefusesBadBlobStreams) {
  BlobChunk huge;
  huge.set_digest(std::string(32, 'a'));
  huge.set_total_size(1ull << 40);
  auto st = put({huge});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("larger than"), std::string::npos) << st.error_message();

  BlobChunk bad_digest;
  bad_digest.set_digest("../../etc/passwd");
  EXPECT_EQ(put({bad_digest}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  std::string big(kBlobChunkBytes + 1, 'x');
  BlobChunk oversized;
  oversized.set_digest(digest_hex({reinterpret_cast<const uint8_t*>(big.data()), big.size()}));
  oversized.set_total_size(big.size());
  oversized.set_data(big);
  st = put({oversized});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("chunk of"), std::string::npos) << st.error_message();

  // Wrong bytes for the announced digest: DATA_LOSS, nothing stored.
  BlobChunk lie;
  lie.set_digest(digest_hex(std::vector<uint8_t>{1, 2, 3}));
  lie.set_total_size(3);
  lie.set_data(std::string("\x01\x02\x04", 3));
  EXPECT_EQ(put({lie}).error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_FALSE(*rt_->core().blobs().contains(lie.digest()));

  // Still serving.
  BlobChunk ok;
  ok.set_digest(digest_hex(std::vector<uint8_t>{1, 2, 3}));
  ok.set_total_size(3);
  ok.set_data(std::string("\x01\x02\x03", 3));
  EXPECT_TRUE(put({ok}).ok());
}

TEST_F(GrpcLimits, RefusesOversizedHeartbeats) {
  RegisterRequest reg;
  reg.set_worker_id("w");
  RegisterResponse rr;
  grpc::ClientContext c1;
  ASSERT_TRUE(stub_->Register(&c1, reg, &rr).ok());
  HeartbeatRequest hb;
  hb.set_worker_id("w");
  for (int i = 0; i < 65; ++i) hb.add_leases()->set_task_id(fmt::format("t{}", i));
  HeartbeatResponse resp;
  grpc::ClientContext c2;
  EXPECT_EQ(stub_->Heartbeat(&c2, hb, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace sp

namespace sp {
namespace {

// Whatever a handler throws becomes an error reply and a log line; the daemon serves on.
TEST(GrpcGuard, AThrowingHandlerIsAnErrorReplyNotACrash) {
  test::TempDir dir;
  std::vector<std::string> logged;
  CoordinatorOptions o;
  o.data_dir = dir / "state";
  o.log = [&logged](const std::string& line) { logged.push_back(line); };
  SystemClock clock;
  auto c = Coordinator::open(o, clock);
  ASSERT_TRUE(c.ok()) << c.status();
  Authenticator auth("", c->get());
  grpc::ServerContext ctx;
  auto thrown = auth.run(&ctx, "SubmitJob", []() -> grpc::Status { throw std::length_error("vector::reserve"); });
  EXPECT_EQ(thrown.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_NE(thrown.error_message().find("SubmitJob: internal error in the coordinator: vector::reserve"),
            std::string::npos);
  auto oom = auth.run(&ctx, "GetJob", []() -> grpc::Status { throw std::bad_alloc(); });
  EXPECT_EQ(oom.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  ASSERT_GE(logged.size(), 2u);
  EXPECT_NE(logged[logged.size() - 2].find("SubmitJob: internal error: vector::reserve"), std::string::npos)
      << logged[logged.size() - 2];
  EXPECT_NE(logged.back().find("GetJob: out of memory"), std::string::npos) << logged.back();
  EXPECT_TRUE(auth.run(&ctx, "ListJobs", [] { return grpc::Status::OK; }).ok());
}

}  // namespace
}  // namespace sp
