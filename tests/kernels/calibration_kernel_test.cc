// The calibration path on the GPU against the CPU ops: the forward of one layer and its
// Hessians for Llama / Qwen2 / EXAONE 4 (whole and micro-batched), GPTQ and SparseGPT
// through obs_compress with the device engine (exact where the arithmetic is: diagonal
// Hessians give round-to-nearest bytes, 27392 columns wide too), and a stories260k layer
// through calibrate_layer. Skips without a device.
//
// Tolerances. fp32 sums of n terms in another order differ by at most ~n * 2^-24 of the
// sum of |terms|; the forward adds GEMMs of width <= 64 and a softmax, so outputs agree
// to 1e-4 relative, and a Hessian entry to 1e-5 * sqrt(H_ii H_jj) (Cauchy-Schwarz bounds
// the sum of |x_i x_j| by that). GPTQ then rounds weights to a grid: an entry near a
// midpoint may round the other way and carry a different error on, so we bound the
// share of codes that differ and the loss, not the bytes.
#include <cmath>
#include <random>

#include "common/float_convert.h"
#include "common/half.h"
#include "formats/model.h"
#include "formats/token_ids.h"
#include "gtest/gtest.h"
#include "kernels/device_info.h"
#include "kernels/layer_forward_cuda.h"
#include "kernels/obs_cuda.h"
#include "ops/calibrate_layer.h"
#include "ops/hessian.h"
#include "ops/nf4.h"
#include "ops/obs_compress.h"
#include "ops/rope.h"
#include "tests/testutil/fixtures.h"
#include "tests/testutil/random_layer.h"
#include "worker/device.h"

namespace sp {
namespace {

class CalibrationCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    if (cuda_devices(&error).empty()) GTEST_SKIP() << "no CUDA device: " << error;
    device_ = calibration_device_for(DeviceChoice{"cuda:0", 0}, 8ull << 30);
  }
  CalibrationDevice device_;
};

Activations random_acts(const ModelConfig& c, int64_t S, int64_t T, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  Activations a{S, T, c.hidden_size, std::vector<float>(static_cast<size_t>(S * T * c.hidden_size))};
  for (float& v : a.data) v = nd(rng);
  return a;
}

void expect_forward_parity(const CalibrationDevice& dev, const ModelConfig& c, int64_t T, size_t budget_sequences) {
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    SCOPED_TRACE(::testing::Message() << c.model_type << " layer " << layer << " micro-batch " << budget_sequences);
    const LayerWeights w = test::random_layer(c, layer, 50 + static_cast<uint32_t>(layer));
    const RopeTable rope = *rope_table(c, T);
    const Activations in = random_acts(c, 3, T, 9);
    // CPU: the forward with taps.
    std::vector<HessianAccumulator> cpu;
    for (int i = 0; i < kLinearInputs; ++i) cpu.emplace_back(linear_input_width(c, static_cast<LinearInput>(i)));
    LinearTap tap = [&](LinearInput which, const float* x, int64_t tokens, int64_t) {
      cpu[static_cast<int>(which)].add(x, tokens);
    };
    Activations want = in;
    for (int64_t s = 0; s < in.sequences; ++s) decoder_layer_forward(c, layer, w, rope, want.row(s), T, &tap);
    // GPU, through the worker's hook; a budget of one sequence per micro-batch when asked.
    std::vector<HessianAccumulator> gpu;
    std::array<HessianAccumulator*, kLinearInputs> collect{};
    for (int i = 0; i < kLinearInputs; ++i) gpu.emplace_back(linear_input_width(c, static_cast<LinearInput>(i)));
    for (int i = 0; i < kLinearInputs; ++i) collect[i] = &gpu[i];
    std::vector<float> out(in.data.size());
    ForwardDevice fwd = dev.forward;
    if (budget_sequences) {
      const CudaForwardMemory m = layer_forward_cuda_memory(cuda_layer_shape(c, layer), T, {true, true, true, true});
      fwd = calibration_device_for(DeviceChoice{"cuda:0", 0}, m.fixed + budget_sequences * m.per_sequence).forward;
    }
    ASSERT_TRUE(fwd(c, layer, w, rope, in, collect, out.data()).ok());
    double worst = 0;
    for (size_t i = 0; i < out.size(); ++i)
      worst = std::max(worst, std::fabs(static_cast<double>(out[i]) - want.data[i]) / (1.0 + std::fabs(want.data[i])));
    EXPECT_LT(worst, 1e-4);
    for (int i = 0; i < kLinearInputs; ++i) {
      const auto hc = *cpu[i].hessian(), hg = *gpu[i].hessian();
      const int64_t n = linear_input_width(c, static_cast<LinearInput>(i));
      int bad = 0;
      for (int64_t a = 0; a < n; ++a)
        for (int64_t b = 0; b < n; ++b) {
          const double tol = 1e-5 * std::sqrt(static_cast<double>(hc[a * n + a]) * hc[b * n + b]) + 1e-30;
          bad += std::fabs(static_cast<double>(hc[a * n + b]) - hg[a * n + b]) > tol;
        }
      EXPECT_EQ(bad, 0) << "input " << linear_input_name(static_cast<LinearInput>(i));
    }
  }
}

TEST_F(CalibrationCuda, LlamaForwardAndHessiansMatchTheCpu) {
  const ModelConfig c = test::tiny_llama_config();
  expect_forward_parity(device_, c, 20, 0);
  expect_forward_parity(device_, c, 20, 1);
}

TEST_F(CalibrationCuda, Qwen2BiasesAndSlidingWindowMatchTheCpu) {
  const ModelConfig c = test::tiny_qwen2_config();
  expect_forward_parity(device_, c, 16, 0);
  expect_forward_parity(device_, c, 16, 2);
}

TEST_F(CalibrationCuda, Exaone4HybridQkNormPostNormsMatchTheCpu) {
  const ModelConfig c = test::tiny_exaone4_config();
  expect_forward_parity(device_, c, 14, 0);
  expect_forward_parity(device_, c, 14, 1);
}

TEST_F(CalibrationCuda, ForwardOverItsBudgetSaysSoAndWritesNothing) {
  const ModelConfig c = test::config_from_json(R"({"architectures":["LlamaForCausalLM"],"model_type":"llama",
    "hidden_size":32,"intermediate_size":48,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,
    "vocab_size":64})");
  const LayerWeights w = test::random_layer(c, 0, 1);
  const Activations in = random_acts(c, 2, 8, 3);
  HessianAccumulator h(32);
  std::vector<float> out(in.data.size(), 7.0f);
  const auto tiny = calibration_device_for(DeviceChoice{"cuda:0", 0}, 1024);
  const absl::Status st = tiny.forward(c, 0, w, *rope_table(c, 8), in, {&h, nullptr, nullptr, nullptr}, out.data());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("budget"), std::string::npos) << st;
  EXPECT_EQ(out, std::vector<float>(in.data.size(), 7.0f));
  EXPECT_FALSE(h.hessian().ok());  // no samples were counted
}

// ---- GPTQ / SparseGPT ------------------------------------------------------------------

std::vector<float> weights(size_t n, uint32_t seed) { return test::bf16_weights(n, seed); }
std::vector<float> diagonal(int64_t c, uint32_t seed) { return test::diagonal_hessian(c, seed); }
// With an outlier channel (3), as real activations have.
std::vector<float> hessian_of(int64_t c, int64_t tokens, uint32_t seed) {
  return test::random_hessian(c, tokens, seed, 3 % c);
}

TEST_F(CalibrationCuda, GptqWithADiagonalHessianIsRoundToNearestBytes) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{16, 192}, {3, 77}, {5, 64}, {40, 300}})
    for (bool act_order : {false, true})
      for (bool dq : {false, true}) {
        SCOPED_TRACE(::testing::Message() << rows << "x" << cols << " act_order " << act_order << " dq " << dq);
        const auto w = weights(static_cast<size_t>(rows * cols), 7);
        ObsSettings s;
        s.act_order = act_order;
        s.double_quant = dq;
        auto cpu = obs_compress(w, rows, cols, diagonal(cols, 3), s);
        auto gpu = obs_compress(w, rows, cols, diagonal(cols, 3), s, &device_.obs);
        ASSERT_TRUE(cpu.ok() && gpu.ok()) << cpu.status() << gpu.status();
        EXPECT_EQ(gpu->packed, cpu->packed);
        EXPECT_EQ(gpu->absmax, cpu->absmax);
        EXPECT_EQ(gpu->weight, cpu->weight);
        if (dq) continue;  // double quantization rounds against the absmax as it decodes: not plain RTN
        std::vector<uint8_t> packed(nf4_packed_bytes(w.size()));
        std::vector<float> absmax(nf4_num_blocks(w.size(), 64));
        nf4_quantize_ref(w.data(), DType::kF32, w.size(), 64, packed.data(), absmax.data());
        EXPECT_EQ(gpu->packed, packed);
      }
}

TEST_F(CalibrationCuda, A27392WideWeightWithADiagonalHessianIsRoundToNearest) {
  const int64_t rows = 3, cols = 27392;
  const auto w = weights(static_cast<size_t>(rows * cols), 11);
  ObsSettings s;
  s.act_order = true;
  auto gpu = obs_compress(w, rows, cols, diagonal(cols, 5), s, &device_.obs);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  std::vector<uint8_t> packed(nf4_packed_bytes(w.size()));
  std::vector<float> absmax(nf4_num_blocks(w.size(), 64));
  nf4_quantize_ref(w.data(), DType::kF32, w.size(), 64, packed.data(), absmax.data());
  EXPECT_EQ(gpu->packed, packed);
  EXPECT_EQ(gpu->absmax, absmax);
}

// Share of NF4 codes that differ between two packings.
double code_mismatch(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  size_t differ = 0;
  for (size_t i = 0; i < a.size(); ++i) differ += ((a[i] >> 4) != (b[i] >> 4)) + ((a[i] & 15) != (b[i] & 15));
  return static_cast<double>(differ) / (2.0 * static_cast<double>(a.size()));
}

TEST_F(CalibrationCuda, GptqOnARealHessianAgreesWithTheCpu) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{48, 256}, {17, 333}})
    for (bool act_order : {false, true})
      for (double search : {0.0, 0.06}) {
        SCOPED_TRACE(::testing::Message() << rows << "x" << cols << " act_order " << act_order << " search " << search);
        const auto w = weights(static_cast<size_t>(rows * cols), 21);
        const auto h = hessian_of(cols, 2 * cols, 4);
        ObsSettings s;
        s.act_order = act_order;
        s.scale_range = search;
        auto cpu = obs_compress(w, rows, cols, h, s);
        auto gpu = obs_compress(w, rows, cols, h, s, &device_.obs);
        ASSERT_TRUE(cpu.ok() && gpu.ok()) << cpu.status() << gpu.status();
        EXPECT_LT(code_mismatch(gpu->packed, cpu->packed), 0.01);
        EXPECT_NEAR(gpu->loss, cpu->loss, 0.01 * cpu->loss);
        EXPECT_EQ(gpu->damp_used, cpu->damp_used);
        // A budget for two loops at a time: the search's candidates in groups (the lazy
        // GEMM is then narrower and may sum in another order: the same tolerance).
        const auto two = calibration_device_for(DeviceChoice{"cuda:0", 0}, CudaObs::memory_needed(rows, cols, 2));
        auto grouped = obs_compress(w, rows, cols, h, s, &two.obs);
        ASSERT_TRUE(grouped.ok()) << grouped.status();
        EXPECT_LT(code_mismatch(grouped->packed, cpu->packed), 0.01);
        EXPECT_NEAR(grouped->loss, cpu->loss, 0.01 * cpu->loss);
        // The same budget twice: the same bytes (deterministic on a device kind).
        auto again = obs_compress(w, rows, cols, h, s, &two.obs);
        ASSERT_TRUE(again.ok());
        EXPECT_EQ(again->packed, grouped->packed);
      }
}

TEST_F(CalibrationCuda, SparseGptMasksHaveExactCountsAndMatchTheCpu) {
  const int64_t rows = 24, cols = 256;
  const auto w = weights(static_cast<size_t>(rows * cols), 31);
  const auto h = hessian_of(cols, 3 * cols, 8);
  for (PruneScope scope : {PruneScope::kRow, PruneScope::kTensor, PruneScope::kTwoFour})
    for (bool quantize : {false, true}) {
      SCOPED_TRACE(::testing::Message() << prune_scope_name(scope) << " quantize " << quantize);
      ObsSettings s;
      s.quantize = quantize;
      s.scale_range = quantize ? 0.04 : 0.0;  // the search's loops run side by side (one by one with host masks)
      s.mask = ObsSettings::Mask::kAdaptive;
      s.scope = scope;
      s.sparsity = scope == PruneScope::kTwoFour ? 0.5 : 0.3;
      auto cpu = obs_compress(w, rows, cols, h, s);
      auto gpu = obs_compress(w, rows, cols, h, s, &device_.obs);
      ASSERT_TRUE(cpu.ok() && gpu.ok()) << cpu.status() << gpu.status();
      EXPECT_EQ(gpu->pruned, cpu->pruned);
      size_t zero_differ = 0;
      double worst = 0;
      for (size_t i = 0; i < w.size(); ++i) {
        zero_differ += (gpu->weight[i] == 0.0f) != (cpu->weight[i] == 0.0f);
        worst = std::max(worst, std::fabs(static_cast<double>(gpu->weight[i]) - cpu->weight[i]));
      }
      EXPECT_LT(zero_differ, w.size() / 100);
      if (!quantize) {
        EXPECT_LT(worst, 1e-3);  // fp32 reordering only (weights ~0.05)
      }
      EXPECT_NEAR(gpu->loss, cpu->loss, 0.02 * cpu->loss);
    }
}

// ---- a real layer ----------------------------------------------------------------------

TEST_F(CalibrationCuda, AStoriesLayerCalibratesOnTheGpuAsOnTheCpu) {
  auto m = open_model(test::fixture("stories260k/hf-bf16"));
  ASSERT_TRUE(m.ok()) << m.status();
  std::vector<InputTensor> inputs;
  for (const auto& name : m->desc.shards[1].tensors) inputs.push_back({m->desc.find(name), m->files.find(name)->view().bytes});
  const auto ids = *read_token_ids(test::fixture("stories260k/text/calib.ids.txt"), 512, 32, 256);
  const TensorRef* e = m->files.find("model.embed_tokens.weight");
  const Activations a0 = embed_calibration(m->desc.config, to_float32(e->view().bytes, e->info->dtype), ids.ids.data(),
                                           ids.sequences, ids.seq_len);
  CompressSettings gptq;
  gptq.quantize = Nf4Settings{64, false, DType::kBF16};
  gptq.quant_method = QuantMethod::kGptq;
  gptq.gptq.act_order = true;
  gptq.gptq.scale_search = 0.1;
  Activations cpu_a = a0, gpu_a = a0;
  auto cpu = calibrate_layer(m->desc.config, 0, inputs, cpu_a, gptq, true);
  auto gpu = calibrate_layer(m->desc.config, 0, inputs, gpu_a, gptq, true, nf4_best_backend(), device_);
  ASSERT_TRUE(cpu.ok() && gpu.ok()) << cpu.status() << gpu.status();
  ASSERT_EQ(cpu->linears.size(), gpu->linears.size());
  for (size_t i = 0; i < cpu->linears.size(); ++i) {
    SCOPED_TRACE(cpu->linears[i].name);
    EXPECT_NEAR(gpu->linears[i].loss, cpu->linears[i].loss, 0.02 * cpu->linears[i].loss);
    EXPECT_NEAR(gpu->linears[i].output_error, cpu->linears[i].output_error, 0.05 * cpu->linears[i].output_error);
  }
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (!is_linear_weight(inputs[k].meta->role)) continue;
    EXPECT_LT(code_mismatch(gpu->result.groups[k][0].data, cpu->result.groups[k][0].data), 0.02) << inputs[k].meta->name;
  }
  double worst = 0;  // the next layer's inputs, from the compressed layer
  for (size_t i = 0; i < cpu_a.data.size(); ++i)
    worst = std::max(worst, std::fabs(static_cast<double>(gpu_a.data[i]) - cpu_a.data[i]) / (1.0 + std::fabs(cpu_a.data[i])));
  EXPECT_LT(worst, 0.05);
}

}  // namespace
}  // namespace sp
