// --device: spellings, CPU-only fallbacks and the NF4 backend a worker quantizes with.
#include "worker/device.h"

#include "gtest/gtest.h"

namespace sp {
namespace {

TEST(WorkerDevice, ChoosesAndRefusesClearly) {
  auto cpu = choose_device("cpu");
  ASSERT_TRUE(cpu.ok());
  EXPECT_EQ(cpu->label, "cpu");
  EXPECT_EQ(cpu->cuda, -1);
  EXPECT_STREQ(nf4_backend_for(*cpu).name, nf4_best_backend().name);
  auto bad = choose_device("gpu");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(bad.status().message()).find("expected auto, cpu or cuda:N"), std::string::npos);
  EXPECT_FALSE(choose_device("cuda:x").ok());
  auto autod = choose_device("auto");
  ASSERT_TRUE(autod.ok());
  if (autod->cuda < 0) {  // no usable device here: auto is the CPU and cuda:0 is refused
    EXPECT_EQ(autod->label, "cpu");
    auto missing = choose_device("cuda:0");
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(std::string(missing.status().message()).find("--device cuda:0"), std::string::npos);
  } else {
    EXPECT_EQ(autod->label.rfind("cuda:0 (", 0), 0u) << autod->label;
    EXPECT_STREQ(nf4_backend_for(*autod).name, "cuda");
    EXPECT_FALSE(choose_device("cuda:99").ok());
  }
}

// Through the worker's backend, bytes equal the CPU's (the GPU when present, else the
// fallback path is the CPU itself).
TEST(WorkerDevice, BackendBytesEqualTheCpu) {
  auto d = choose_device("auto");
  ASSERT_TRUE(d.ok());
  const Nf4Backend& b = nf4_backend_for(*d);
  std::vector<float> v(5000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(static_cast<float>(i) * 0.37f) * 0.1f;
  std::vector<uint8_t> p1(2500), p2(2500);
  std::vector<float> a1(79), a2(79);
  ASSERT_EQ(b.quantize(v.data(), DType::kF32, v.size(), 64, p1.data(), a1.data()), kAllFinite);
  ASSERT_EQ(nf4_quantize_ref(v.data(), DType::kF32, v.size(), 64, p2.data(), a2.data()), kAllFinite);
  EXPECT_EQ(p1, p2);
  EXPECT_EQ(a1, a2);
}

}  // namespace
}  // namespace sp
