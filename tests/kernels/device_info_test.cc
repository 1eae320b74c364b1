// CUDA device discovery. Skips cleanly on machines without a GPU (CI, developer boxes).
#include "gtest/gtest.h"
#include "kernels/device_info.h"

namespace sp {
namespace {

TEST(CudaDevices, ReportNameMemoryAndComputeCapability) {
  std::string error;
  const auto devices = cuda_devices(&error);
  if (devices.empty()) GTEST_SKIP() << "no CUDA device: " << error;
  for (const auto& d : devices) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_GT(d.total_memory, 1ull << 30);
    EXPECT_GE(d.cc_major * 10 + d.cc_minor, 61);
  }
}

}  // namespace
}  // namespace sp
