// One EXAONE-4.0-32B-shaped decoder layer (hidden 5120, intermediate 27392, 40 heads, 8
// KV heads, head_dim 128; synthetic weights and activations) calibrated on a CUDA device
// the way a worker does it (calibrate_layer's steps through the worker's device hooks,
// within an 11 GiB device budget, as on a GTX 1080 Ti):
//   1. the dense forward of SEQUENCES x TOKENS calibration tokens with the four Hessians,
//   2. GPTQ-NF4 of the seven projections (act-order, scale search as configured),
//   3. the forward through the compressed layer (sequential mode; pipelined mode skips
//      it and passes step 1's output on).
// Prints the seconds of each step, the fp32 work done, and a projection to a GTX 1080 Ti.
//   build/bin/bench_layer_cuda [SEQUENCES=128] [TOKENS=2048] [SCALE_SEARCH=0.1] [BUDGET_GIB=11]
#include <chrono>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>

#include "kernels/device_info.h"
#include "kernels/layer_forward_cuda.h"
#include "kernels/obs_cuda.h"
#include "ops/calibrate_layer.h"
#include "ops/decoder_layer.h"
#include "ops/hessian.h"
#include "ops/obs_compress.h"
#include "ops/rope.h"
#include "formats/model_layout.h"
#include "tests/testutil/random_layer.h"
#include "worker/device.h"

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Cheap deterministic fill (the values do not matter for timing, only their scale).
void fill(std::vector<float>& v, uint64_t seed, float scale) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& f : v) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    f = scale * (static_cast<float>(x >> 40) / static_cast<float>(1 << 24) - 0.5f);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sp;
  const int64_t S = argc > 1 ? std::atoll(argv[1]) : 128, T = argc > 2 ? std::atoll(argv[2]) : 2048;
  const double search = argc > 3 ? std::atof(argv[3]) : 0.1;
  const uint64_t budget = static_cast<uint64_t>((argc > 4 ? std::atof(argv[4]) : 11.0) * (1ull << 30));
  std::string error;
  const auto devices = cuda_devices(&error);
  if (devices.empty()) {
    std::fprintf(stderr, "no CUDA device: %s\n", error.c_str());
    return 2;
  }
  const ModelConfig c = test::config_from_json(R"({"architectures":["Exaone4ForCausalLM"],"model_type":"exaone4",
    "hidden_size":5120,"intermediate_size":27392,"num_hidden_layers":4,"num_attention_heads":40,
    "num_key_value_heads":8,"head_dim":128,"vocab_size":102400,"rms_norm_eps":1e-5,"rope_theta":1000000.0,
    "sliding_window":4096,"sliding_window_pattern":"LLLG","max_position_embeddings":131072})");
  LayerWeights w;
  for (const ExpectedTensor& e : expected_tensors(c)) {
    if (e.layer != 0 || e.role == TensorRole::kRotaryInvFreq) continue;
    const bool norm = e.shape.size() == 1;
    std::vector<float> v(static_cast<size_t>(norm ? e.shape[0] : e.shape[0] * e.shape[1]));
    fill(v, static_cast<uint64_t>(e.role) + 7, norm ? 0.2f : 0.06f);
    if (norm)
      for (float& x : v) x += 1.0f;  // norms near 1
    w.tensors[e.role] = std::move(v);
  }
  Activations acts{S, T, c.hidden_size, std::vector<float>(static_cast<size_t>(S * T * c.hidden_size))};
  fill(acts.data, 99, 2.0f);
  CalibrationDevice dev = calibration_device_for(DeviceChoice{"cuda:0", 0}, budget);
  // Where GPTQ's time goes: the device engine's setup (uploads, factorisation) and loops,
  // timed from the host (each call ends synchronised); the rest of obs_compress is host
  // work.
  struct Split {
    double setup = 0, loops = 0;  // setup: uploads and the factorisation
  } split;
  class Timed final : public ObsEngine {
   public:
    Timed(std::unique_ptr<ObsEngine> e, Split& s) : e_(std::move(e)), s_(s) {}
    absl::StatusOr<ObsLoopResult> loop(const ObsSettings& s, const std::vector<float>& scale, bool final) override {
      const auto t0 = Clock::now();
      auto r = e_->loop(s, scale, final);
      s_.loops += since(t0);
      return r;
    }
    absl::StatusOr<std::vector<std::vector<double>>> losses(const ObsSettings& s,
                                                            const std::vector<std::vector<float>>& scales) override {
      const auto t0 = Clock::now();
      auto r = e_->losses(s, scales);
      s_.loops += since(t0);
      return r;
    }

   private:
    std::unique_ptr<ObsEngine> e_;
    Split& s_;
  };
  dev.obs = [inner = dev.obs, &split](const ObsProblem& p, const ObsSettings& s, const std::vector<float>& h,
                                      float add) -> std::unique_ptr<ObsEngine> {
    const auto t0 = Clock::now();
    std::unique_ptr<ObsEngine> e = inner(p, s, h, add);
    split.setup += since(t0);
    return e ? std::make_unique<Timed>(std::move(e), split) : nullptr;
  };
  const RopeTable rope = *rope_table(c, T);
  std::printf("%s, budget %.1f GiB: EXAONE-4.0-32B layer, %lld x %lld tokens, scale search %.2f\n",
              devices[0].name.c_str(), budget / double(1ull << 30), static_cast<long long>(S),
              static_cast<long long>(T), search);

  // 1. Dense forward + Hessians.
  std::array<std::optional<HessianAccumulator>, kLinearInputs> acc;
  std::array<HessianAccumulator*, kLinearInputs> collect{};
  for (int i = 0; i < kLinearInputs; ++i) {
    acc[i].emplace(linear_input_width(c, static_cast<LinearInput>(i)));
    collect[i] = &*acc[i];
  }
  auto t0 = Clock::now();
  if (absl::Status st = dev.forward(c, 0, w, rope, acts, collect, nullptr); !st.ok()) {
    std::fprintf(stderr, "forward: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  const double t_forward = since(t0);
  const double tokens = static_cast<double>(S * T);
  const double H = 5120, I = 27392, qkv = 5120 + 2 * 1024;
  const double gemm_flops = 2 * tokens * (H * qkv + H * H + 3 * H * I);
  const double attn_flops = 2 * 2 * static_cast<double>(S) * T * T * 40 * 128;  // full T x T, both products
  const double syrk_flops = tokens * (3 * H * H + I * I);                        // n d (d + 1) per input
  {
    const CudaForwardMemory m = layer_forward_cuda_memory(cuda_layer_shape(c, 0), T, {true, true, true, true});
    const int64_t per_batch = std::min<int64_t>(S, static_cast<int64_t>((budget - m.fixed) / m.per_sequence));
    int slots = 1;
    while (slots < 11 && CudaObs::memory_needed(5120, 27392, slots + 1) <= budget) ++slots;
    std::printf("  device memory planned: forward %.2f GiB fixed + %.2f GiB per sequence -> %lld per micro-batch "
                "(%.2f GiB); GPTQ down_proj %d loops side by side (%.2f GiB)\n",
                m.fixed / double(1ull << 30), m.per_sequence / double(1ull << 30), static_cast<long long>(per_batch),
                (m.fixed + per_batch * m.per_sequence) / double(1ull << 30), slots,
                CudaObs::memory_needed(5120, 27392, slots) / double(1ull << 30));
  }
  std::printf("  forward + Hessians   %8.2f s  (%.0f TFLOP fp32: %.1f TFLOP/s)\n", t_forward,
              (gemm_flops + attn_flops + syrk_flops) / 1e12, (gemm_flops + attn_flops + syrk_flops) / t_forward / 1e12);

  // 2. GPTQ-NF4 of the seven projections.
  double t_gptq = 0, gptq_flops = 0;
  const std::pair<TensorRole, LinearInput> projections[] = {
      {TensorRole::kQProj, LinearInput::kAttention}, {TensorRole::kKProj, LinearInput::kAttention},
      {TensorRole::kVProj, LinearInput::kAttention}, {TensorRole::kOProj, LinearInput::kAttentionOutput},
      {TensorRole::kGateProj, LinearInput::kMlp},    {TensorRole::kUpProj, LinearInput::kMlp},
      {TensorRole::kDownProj, LinearInput::kDown}};
  for (auto [role, input] : projections) {
    std::vector<float>& wt = w.tensors.at(role);
    const int64_t cols = linear_input_width(c, input), rows = static_cast<int64_t>(wt.size()) / cols;
    t0 = Clock::now();
    auto h = role == TensorRole::kVProj || role == TensorRole::kOProj || role == TensorRole::kUpProj ||
                     role == TensorRole::kDownProj
                 ? acc[static_cast<int>(input)]->take_hessian()  // the last user, as calibrate_layer
                 : acc[static_cast<int>(input)]->hessian();
    if (!h.ok()) return 1;
    ObsSettings s;
    s.act_order = true;
    s.scale_range = search;
    auto r = obs_compress(wt, rows, cols, std::move(*h), s, &dev.obs);
    const double t = since(t0);
    if (!r.ok()) {
      std::fprintf(stderr, "gptq: %s\n", std::string(r.status().message()).c_str());
      return 1;
    }
    const double loops = 1 + 2 * std::lround(search / kScaleStep);
    // potrf + potri + potrf: 4/3 c^3; each loop's lazy updates: rows c^2.
    const double f = 4.0 / 3 * cols * cols * static_cast<double>(cols) + loops * static_cast<double>(rows) * cols * cols;
    gptq_flops += f;
    t_gptq += t;
    std::printf("  GPTQ %-10s %5lldx%-5lld %8.2f s\n", std::string(role_name(role)).c_str(), static_cast<long long>(rows),
                static_cast<long long>(cols), t);
    wt = std::move(r->weight);
  }
  std::printf("  GPTQ all             %8.2f s  (%.0f TFLOP; device uploads + factorisations %.2f s, loops %.2f s, "
              "host %.2f s)\n",
              t_gptq, gptq_flops / 1e12, split.setup, split.loops, t_gptq - split.setup - split.loops);

  // 3. The forward through the compressed layer.
  t0 = Clock::now();
  if (absl::Status st = forward_layer(c, 0, w, acts, dev); !st.ok()) {
    std::fprintf(stderr, "forward: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  const double t_next = since(t0);
  std::printf("  forward (compressed) %8.2f s\n", t_next);
  const double seq = t_forward + t_gptq + t_next, pipe = t_forward + t_gptq;
  std::printf("  layer: sequential %.2f s, pipelined %.2f s\n", seq, pipe);
  // Projection to a GTX 1080 Ti: the device-side phases (the forwards, GPTQ's setup,
  // factorisations and loops, with their PCIe copies) scale by this device's fp32 peak
  // over the 1080 Ti's (compute-bound GEMMs; 11.34 TFLOP/s = 3584 lanes x 2 x 1.582
  // GHz) or, the larger, its memory-bandwidth ratio (484 GB/s); the host-side part of
  // GPTQ (obs_compress's passes over the weight) does not scale. Ratios for an H100 SXM
  // (66.9 TFLOP/s fp32 at 1.98 GHz, 3352 GB/s).
  const double flop_ratio = 66.9 / 11.34, bw_ratio = 3352.0 / 484.0;
  const double host = t_gptq - split.setup - split.loops;
  const double dev_seq = seq - host, dev_pipe = pipe - host;
  std::printf("  projected GTX 1080 Ti (device part x%.1f..x%.1f, host part as measured): sequential %.0f-%.0f s, "
              "pipelined %.0f-%.0f s per layer\n",
              flop_ratio, bw_ratio, dev_seq * flop_ratio + host, dev_seq * bw_ratio + host,
              dev_pipe * flop_ratio + host, dev_pipe * bw_ratio + host);
  const double floor_seq = (2 * gemm_flops + 2 * attn_flops + syrk_flops + gptq_flops) / 11.34e12;
  std::printf("  1080 Ti fp32 floor at 100%% of peak: sequential %.0f s, pipelined %.0f s\n", floor_seq,
              (gemm_flops + attn_flops + syrk_flops + gptq_flops) / 11.34e12);
  return 0;
}
