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

// The plan `inspect` shows for a GPU worker: an EXAONE-4.0-32B layer on an 11 GiB card
// (the lab's 1080 Ti) with 128 x 2048 calibration tokens micro-batches its forward and
// fits every projection's GPTQ; with 4 GiB even one sequence does not fit.
TEST(WorkerDevice, PlansA32BLayerOnAnElevenGigabyteCard) {
  auto c = parse_model_config(R"({"architectures":["Exaone4ForCausalLM"],"model_type":"exaone4",
    "hidden_size":5120,"intermediate_size":27392,"num_hidden_layers":64,"num_attention_heads":40,
    "num_key_value_heads":8,"head_dim":128,"vocab_size":102400,"sliding_window":4096,
    "sliding_window_pattern":"LLLG"})", "32B");
  ASSERT_TRUE(c.ok()) << c.status();
  CompressSettings gptq;
  gptq.quantize = Nf4Settings{64, true, DType::kBF16};
  gptq.quant_method = QuantMethod::kGptq;
  gptq.gptq.scale_search = 0.1;
  const uint64_t gib = 1ull << 30;
  const GpuCalibrationPlan p = plan_gpu_calibration(*c, gptq, 128, 2048, 11 * gib);
  EXPECT_GE(p.sequences_per_batch, 4);
  EXPECT_LT(p.sequences_per_batch, 128);
  EXPECT_LE(p.forward_bytes, 11 * gib);
  ASSERT_EQ(p.projections.size(), 7u);
  for (const auto& pr : p.projections) {
    EXPECT_GE(pr.loops, 1) << pr.name;
    EXPECT_LE(pr.bytes, 11 * gib) << pr.name;
    EXPECT_EQ(pr.candidates, 11);
  }
  EXPECT_EQ(p.projections[6].name, "down_proj");
  EXPECT_EQ(p.projections[6].cols, 27392);
  EXPECT_LT(p.projections[6].loops, 11) << "the 27392-wide Hessian leaves room for fewer loops";
  const GpuCalibrationPlan small = plan_gpu_calibration(*c, gptq, 128, 2048, 4 * gib);
  EXPECT_EQ(small.sequences_per_batch, 0);
  EXPECT_EQ(small.projections[6].loops, 0);  // down_proj on the CPU
  CompressSettings rtn;
  rtn.quantize = Nf4Settings{64, true, DType::kBF16};
  EXPECT_TRUE(plan_gpu_calibration(*c, rtn, 128, 2048, 11 * gib).projections.empty());
}

}  // namespace
}  // namespace sp
