#include "worker/device.h"

#include <atomic>
#include <cmath>
#include <cstdio>

#include "common/byte_size.h"
#include "fmt/format.h"

#include "kernels/layer_forward_cuda.h"  // the memory formulas are plain C++ in every build
#include "kernels/obs_cuda.h"

#ifdef SHARDPRESS_HAVE_CUDA
#include "kernels/device_info.h"
#include "kernels/nf4_cuda.h"
#include "kernels/prune_cuda.h"
#endif

namespace sp {

CudaLayerShape cuda_layer_shape(const ModelConfig& c, int64_t layer) {
  const bool exaone = c.arch == Arch::kExaone4;
  const LayerAttention kind = layer_attention(c, layer);
  return CudaLayerShape{c.hidden_size, c.intermediate_size, c.num_heads, c.num_kv_heads, c.head_dim,
                        /*input_norms=*/!exaone, /*qk_norm=*/exaone, kind.rope, kind.window, c.rms_norm_eps};
}

#ifdef SHARDPRESS_HAVE_CUDA
namespace {

std::atomic<int> g_cuda_device{0};

size_t cuda_quantize(const void* src, DType dtype, size_t n, size_t blocksize, uint8_t* packed, float* absmax) {
  const CudaInput t = dtype == DType::kF32 ? CudaInput::kF32 : dtype == DType::kF16 ? CudaInput::kF16 : CudaInput::kBF16;
  CudaNf4Result r = nf4_quantize_cuda(g_cuda_device.load(), src, t, n, blocksize);
  if (!r.error.empty()) {  // out of memory, a lost device...: this task runs on the CPU
    std::fprintf(stderr, "cuda:%d NF4 quantize failed (%s); quantizing on the CPU\n", g_cuda_device.load(),
                 r.error.c_str());
    return nf4_best_backend().quantize(src, dtype, n, blocksize, packed, absmax);
  }
  if (r.first_nonfinite != SIZE_MAX) return r.first_nonfinite;
  std::copy(r.packed.begin(), r.packed.end(), packed);
  std::copy(r.absmax.begin(), r.absmax.end(), absmax);
  return kAllFinite;
}

bool cuda_available() { return !cuda_devices().empty(); }

// The forward of one layer on the GPU (kernels/layer_forward_cuda).
absl::Status cuda_forward(int dev, uint64_t budget, const ModelConfig& c, int64_t layer, const LayerWeights& w,
                          const RopeTable& rope, const Activations& acts,
                          std::array<HessianAccumulator*, kLinearInputs> collect, float* out) {
  const CudaLayerShape shape = cuda_layer_shape(c, layer);
  CudaLayerWeights cw;
  cw.q = w.find(TensorRole::kQProj);
  cw.k = w.find(TensorRole::kKProj);
  cw.v = w.find(TensorRole::kVProj);
  cw.o = w.find(TensorRole::kOProj);
  cw.gate = w.find(TensorRole::kGateProj);
  cw.up = w.find(TensorRole::kUpProj);
  cw.down = w.find(TensorRole::kDownProj);
  cw.q_bias = w.find(TensorRole::kQBias);
  cw.k_bias = w.find(TensorRole::kKBias);
  cw.v_bias = w.find(TensorRole::kVBias);
  cw.o_bias = w.find(TensorRole::kOBias);
  cw.gate_bias = w.find(TensorRole::kGateBias);
  cw.up_bias = w.find(TensorRole::kUpBias);
  cw.down_bias = w.find(TensorRole::kDownBias);
  cw.input_norm = w.find(TensorRole::kInputNorm);
  cw.post_attention_norm = w.find(TensorRole::kPostAttentionNorm);
  cw.q_norm = w.find(TensorRole::kQNorm);
  cw.k_norm = w.find(TensorRole::kKNorm);
  cw.post_feedforward_norm = w.find(TensorRole::kPostFeedforwardNorm);
  CudaForwardRequest req;
  req.acts = acts.data.data();
  req.sequences = acts.sequences;
  req.tokens = acts.tokens;
  req.rope_cos = rope.cos.data();
  req.rope_sin = rope.sin.data();
  for (int i = 0; i < kLinearInputs; ++i) req.hessian_sums[i] = collect[i] ? collect[i]->sums() : nullptr;
  req.out = out;
  bool written = false;
  req.out_written = &written;
  req.memory_budget = budget;
  const std::string error = layer_forward_cuda(dev, shape, cw, req);
  if (!error.empty()) {
    std::fprintf(stderr, "cuda:%d layer %lld forward failed (%s)%s\n", dev, static_cast<long long>(layer),
                 error.c_str(), written && out == acts.data.data() ? "" : "; running it on the CPU");
    const std::string message = fmt::format("cuda:{}: {}", dev, error);
    return written ? absl::DataLossError(message) : absl::ResourceExhaustedError(message);
  }
  for (HessianAccumulator* a : collect)
    if (a) a->count_samples(acts.sequences);
  return absl::OkStatus();
}

// GPTQ / SparseGPT factorisation and column loops on the GPU (kernels/obs_cuda).
class CudaObsEngine final : public ObsEngine {
 public:
  CudaObsEngine(int dev, const ObsProblem& p, std::unique_ptr<CudaObs> obs) : dev_(dev), p_(p), obs_(std::move(obs)) {}
  CudaObsLoop settings_for(const ObsSettings& s, const float* scale) const {
    CudaObsLoop l;
    l.block = s.block_size;
    l.scale = scale;
    l.nf4_blocksize = s.nf4_blocksize;
    const bool adaptive = s.mask == ObsSettings::Mask::kAdaptive;
    l.two_four = adaptive && s.scope == PruneScope::kTwoFour;
    if (adaptive && !l.two_four)
      l.block_mask = [&s, rows = p_.rows](int64_t b0, int64_t nb, const float* w1, const float* d, uint8_t* mask) {
        const absl::Status st = obs_block_mask(s, rows, b0, nb, w1, d, mask);
        return st.ok() ? std::string() : std::string(st.message());
      };
    return l;
  }
  absl::StatusOr<ObsLoopResult> loop(const ObsSettings& s, const std::vector<float>& scale, bool final) override {
    const CudaObsLoop l = settings_for(s, scale.empty() ? nullptr : scale.data());
    const auto n = static_cast<size_t>(p_.rows * p_.cols);
    ObsLoopResult r;
    r.row_loss.resize(static_cast<size_t>(p_.rows));
    const bool masked = s.mask != ObsSettings::Mask::kNone;
    if (final) {
      r.w.resize(n);
      if (masked) r.mask.resize(n);
      if (!scale.empty()) r.packed.resize((n + 1) / 2);
    }
    CudaObsOutput o{final ? r.w.data() : nullptr, final && masked ? r.mask.data() : nullptr,
                    final && !scale.empty() ? r.packed.data() : nullptr, r.row_loss.data()};
    const std::string error = obs_->loop(l, o);
    if (!error.empty()) {
      std::fprintf(stderr, "cuda:%d column loop failed (%s); on the CPU\n", dev_, error.c_str());
      return absl::InternalError(error);
    }
    return r;
  }
  absl::StatusOr<std::vector<std::vector<double>>> losses(const ObsSettings& s,
                                                          const std::vector<std::vector<float>>& scales) override {
    if (s.mask == ObsSettings::Mask::kAdaptive && s.scope != PruneScope::kTwoFour)
      return ObsEngine::losses(s, scales);  // the host picks each block's mask: one loop at a time
    CudaObsLoop l = settings_for(s, nullptr);
    std::vector<std::vector<double>> out(scales.size(), std::vector<double>(static_cast<size_t>(p_.rows)));
    std::vector<const float*> sp;
    std::vector<double*> lp;
    for (size_t i = 0; i < scales.size(); ++i) {
      sp.push_back(scales[i].data());
      lp.push_back(out[i].data());
    }
    const std::string error = obs_->losses(l, static_cast<int>(scales.size()), sp.data(), lp.data());
    if (!error.empty()) {
      std::fprintf(stderr, "cuda:%d column loops failed (%s); on the CPU\n", dev_, error.c_str());
      return absl::InternalError(error);
    }
    return out;
  }

 private:
  int dev_;
  const ObsProblem& p_;
  std::unique_ptr<CudaObs> obs_;
};

// What a call may use: the worker's budget, or less when less is free now (the CUDA
// context and other processes hold some), keeping 256 MiB spare for cuBLAS/cuSOLVER.
uint64_t device_budget(int dev, uint64_t budget) {
  const uint64_t free = cuda_free_memory(dev), spare = 256ull << 20;
  return std::max<uint64_t>(std::min<uint64_t>(budget, free > spare ? free - spare : 0), 1);  // 0 would mean "all"
}

}  // namespace
#endif

absl::StatusOr<DeviceChoice> choose_device(const std::string& flag) {
  if (flag == "cpu") return DeviceChoice{};
  if (flag != "auto" && flag.rfind("cuda:", 0) != 0)
    return absl::InvalidArgumentError(fmt::format("--device {}: expected auto, cpu or cuda:N", flag));
#ifdef SHARDPRESS_HAVE_CUDA
  std::string error;
  const auto devices = cuda_devices(&error);
  int index = 0;
  if (flag == "auto") {
    if (devices.empty()) return DeviceChoice{};
  } else {
    const std::string num = flag.substr(5);
    if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos)
      return absl::InvalidArgumentError(fmt::format("--device {}: expected cuda:N with N a device index", flag));
    index = std::stoi(num);
  }
  for (const auto& d : devices)
    if (d.index == index)
      return DeviceChoice{fmt::format("cuda:{} ({}, sm_{}{}, {})", d.index, d.name, d.cc_major, d.cc_minor,
                                      format_bytes(d.total_memory)),
                          d.index};
  std::string list;
  for (const auto& d : devices) list += fmt::format("{}cuda:{} ({})", list.empty() ? "" : ", ", d.index, d.name);
  return absl::InvalidArgumentError(fmt::format("--device {}: no such CUDA device ({})", flag,
                                                list.empty() ? "none found: " + error : "present: " + list));
#else
  if (flag == "auto") return DeviceChoice{};
  return absl::InvalidArgumentError(
      fmt::format("--device {}: this build has no CUDA (nvcc was not found when it was built); use cpu or auto", flag));
#endif
}

const Nf4Backend& nf4_backend_for(const DeviceChoice& device) {
#ifdef SHARDPRESS_HAVE_CUDA
  if (device.cuda >= 0) {
    g_cuda_device = device.cuda;
    static const Nf4Backend cuda{"cuda", &cuda_available, &cuda_quantize, nf4_best_backend().dequantize,
                                 nf4_best_backend().dequantize_bf16};
    return cuda;
  }
#endif
  (void)device;
  return nf4_best_backend();
}

const PruneDevice* prune_device_for(const DeviceChoice& device) {
#ifdef SHARDPRESS_HAVE_CUDA
  if (device.cuda >= 0) {
    g_cuda_device = device.cuda;
    static const PruneDevice cuda = [](std::span<float> w, int64_t rows, int64_t cols, PruneScope scope, uint64_t k) {
      const CudaPruneScope s = scope == PruneScope::kRow      ? CudaPruneScope::kRow
                               : scope == PruneScope::kTensor ? CudaPruneScope::kTensor
                                                              : CudaPruneScope::kTwoFour;
      const std::string error = prune_magnitude_cuda(g_cuda_device.load(), w.data(), rows, cols, s, k);
      if (error.empty()) return true;
      std::fprintf(stderr, "cuda:%d pruning failed (%s); pruning on the CPU\n", g_cuda_device.load(), error.c_str());
      return false;
    };
    return &cuda;
  }
#endif
  (void)device;
  return nullptr;
}

namespace {

int search_candidates(const ObsSettings& s) {
  return s.quantize && s.scale_range > 0 ? 1 + 2 * static_cast<int>(std::lround(s.scale_range / kScaleStep)) : 1;
}

}  // namespace

absl::StatusOr<uint64_t> gpu_memory_budget(const std::string& flag) {
  if (flag.empty()) return UINT64_MAX;
  auto b = parse_byte_size(flag);
  if (!b.ok()) return annotate(b.status(), "--gpu-memory");
  return *b;
}

int gptq_loops_that_fit(int64_t rows, int64_t cols, int candidates, uint64_t budget) {
  int loops = 0;
  while (loops < std::max(candidates, 1) && CudaObs::memory_needed(rows, cols, loops + 1) <= budget) ++loops;
  return loops;
}

GpuCalibrationPlan plan_gpu_calibration(const ModelConfig& c, const CompressSettings& settings, int64_t sequences,
                                        int64_t tokens, uint64_t budget) {
  GpuCalibrationPlan plan;
  plan.budget = budget;
  const CudaForwardMemory m = layer_forward_cuda_memory(cuda_layer_shape(c, 0), tokens, {true, true, true, true});
  if (m.fixed + m.per_sequence <= budget) {
    plan.sequences_per_batch = std::min<int64_t>(sequences, static_cast<int64_t>((budget - m.fixed) / m.per_sequence));
    plan.forward_bytes = m.fixed + static_cast<uint64_t>(plan.sequences_per_batch) * m.per_sequence;
  }
  const bool gptq = settings.quantize && settings.quant_method == QuantMethod::kGptq;
  if (!gptq && !(settings.prune && settings.prune->method == PruneMethod::kSparseGpt)) return plan;
  ObsSettings os;
  os.quantize = gptq;
  os.scale_range = gptq ? settings.gptq.scale_search : 0.0;
  const int candidates = search_candidates(os);
  const int64_t H = c.hidden_size, I = c.intermediate_size, qw = c.num_heads * c.head_dim,
                kw = c.num_kv_heads * c.head_dim;
  const std::pair<const char*, std::pair<int64_t, int64_t>> shapes[] = {
      {"q_proj", {qw, H}}, {"k_proj", {kw, H}}, {"v_proj", {kw, H}}, {"o_proj", {H, qw}},
      {"gate_proj", {I, H}}, {"up_proj", {I, H}}, {"down_proj", {H, I}}};
  for (const auto& [name, rc] : shapes) {
    GpuCalibrationPlan::Projection p{name, rc.first, rc.second, 0, candidates, 0};
    p.loops = gptq_loops_that_fit(p.rows, p.cols, candidates, budget);
    p.bytes = CudaObs::memory_needed(p.rows, p.cols, std::max(p.loops, 1));
    plan.projections.push_back(p);
  }
  return plan;
}

CalibrationDevice calibration_device_for(const DeviceChoice& device, uint64_t memory_budget) {
  CalibrationDevice d;
#ifdef SHARDPRESS_HAVE_CUDA
  if (device.cuda >= 0) {
    const int dev = device.cuda;
    d.forward = [dev, memory_budget](const ModelConfig& c, int64_t layer, const LayerWeights& w,
                                     const RopeTable& rope, const Activations& acts,
                                     std::array<HessianAccumulator*, kLinearInputs> collect, float* out) {
      return cuda_forward(dev, device_budget(dev, memory_budget), c, layer, w, rope, acts, collect, out);
    };
    d.obs = [dev, memory_budget](const ObsProblem& p, const ObsSettings& s, const std::vector<float>& h,
                                 float add) -> std::unique_ptr<ObsEngine> {
      const uint64_t budget = device_budget(dev, memory_budget);
      // Room for the scale search's loops side by side, as many as the budget allows.
      const int slots = gptq_loops_that_fit(p.rows, p.cols, search_candidates(s), budget);
      const uint64_t need = CudaObs::memory_needed(p.rows, p.cols, std::max(slots, 1));
      if (slots == 0) {
        std::fprintf(stderr, "cuda:%d: GPTQ of a %lldx%lld weight needs %s of device memory, the budget is %s; on the CPU\n",
                     dev, static_cast<long long>(p.rows), static_cast<long long>(p.cols), format_bytes(need).c_str(),
                     format_bytes(budget).c_str());
        return nullptr;
      }
      std::string error;
      std::unique_ptr<CudaObs> obs = CudaObs::create(dev, p.rows, p.cols, p.w.data(),
                                                     p.mask.empty() ? nullptr : p.mask.data(), p.perm.data(), slots,
                                                     &error);
      if (!obs) {
        std::fprintf(stderr, "cuda:%d GPTQ setup failed (%s); on the CPU\n", dev, error.c_str());
        return nullptr;
      }
      bool not_pd = false;  // not positive definite at this damping: the CPU's damping ladder, quietly
      error = obs->factorise(h.data(), add, &not_pd);
      if (!error.empty()) {
        if (!not_pd) std::fprintf(stderr, "cuda:%d factorisation failed (%s); on the CPU\n", dev, error.c_str());
        return nullptr;
      }
      return std::make_unique<CudaObsEngine>(dev, p, std::move(obs));
    };
  }
#endif
  (void)device;
  (void)memory_budget;
  return d;
}

}  // namespace sp
