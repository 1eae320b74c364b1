#include "sim/task_cost.h"

#include <algorithm>

#include "worker/device.h"

namespace sp::sim {

using namespace shardpress::v1;  // NOLINT: the record types

namespace {

// ---- This development machine (2 vCPU at 2.6 GHz, AVX2 + AVX-512), one thread.
// RTN-NF4 compress task (bf16 in: convert, absmax, codes, double quant): `bench_ops_model`
// over the 1B Llama's 20 layers, 1.89 GiB of BF16 in 1.26-1.32 s (README "Measured figures").
constexpr double kCpuRtnBytesPerS = 1.57e9;
// Layer forward + 4 Hessians: `bench_calibration`, one 1B-shaped layer (Llama-3.2-1B),
// 8 x 512 tokens: 7.6 s for 841.8 GFLOP as layer_forward_flops + layer_hessian_flops count them.
constexpr double kCpuForwardFlopsPerS = 841.8e9 / 7.6;
// GPTQ's first loop (factorisations, column loop, lazy updates): 11.0 s for that layer's
// 455.3 GFLOP (2 x rows x cols^2 over the 7 projections); each further scale-search loop
// 4.7 s (README "Calibration cost": 25.0 - 14.0 s and (76.5 - 25.0) / 11).
constexpr double kCpuObsFirstFlopsPerS = 455.3e9 / 11.0;
constexpr double kCpuObsSearchFlopsPerS = 455.3e9 / 4.7;
// What does not scale with flops, from `perf record` of `shardpress compress --method gptq`
// on stories260k (128 x 256 tokens, head_dim 8; 2.36 s): the forward's own code (softmax,
// exp, masks) took 63 % over 10 layer passes of 33.7 M causal scores each, 4.4 ns a
// score; GPTQ's 7 projections x 12 loops about 80 ms a layer beyond their flops, 1 ms a loop.
constexpr double kCpuSecondsPerScore = 4.4e-9;
constexpr double kCpuSecondsPerObsLoop = 1e-3;

// ---- GPUs: `bench_layer_cuda` on an NVIDIA H100 (66.9 TFLOP/s fp32 peak), one
// EXAONE-4.0-32B layer at 128 x 2048 tokens in an 11 GiB budget (README "GPU figures"):
// forward through the layer 6.39 s for 264.6 TFLOP (62 % of peak); forward + 4 Hessians
// 11.15 s, so the Hessians' 217.3 TFLOP took 4.76 s (68 %). GPTQ-NF4 of the 7 projections
// 13.05 s with the scale search (device 6.11 s, host 6.94 s) and 12.8 s without it (17.2 s
// sequential at 32 x 2048 less its forwards): the search's loops run side by side, so a
// layer's GPTQ costs the same with or without it; it scales with the projections' shapes
// (device: rows x cols^2, host: rows x cols). `bench_nf4_cuda`: NF4 quantize moved 74.6 %
// of the H100's memory bandwidth. Another GPU is projected at the same fractions of its own
// peaks (a 1080 Ti was not measured); the host part at the H100 host's rate.
constexpr double kH100PeakFlops = 66.9e12;
constexpr double kGpuForwardEfficiency = 264.6e12 / 6.39 / kH100PeakFlops;
constexpr double kGpuHessianEfficiency = 217.3e12 / 4.76 / kH100PeakFlops;
constexpr double kExaoneObsLoopFlops = 9.2e12;  // 2 x rows x cols^2 over its 7 projections
constexpr double kExaoneObsWeights = 483.6e6;   // rows x cols over them
constexpr double kH100ObsDeviceS = 6.11;
constexpr double kH100ObsHostS = 6.94;
constexpr double kGpuBandwidthEfficiency = 0.746;

struct ProjectionShape {
  int64_t rows, cols;
};

std::vector<ProjectionShape> projections(const ModelConfig& c) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, qw = c.num_heads * c.head_dim,
                kw = c.num_kv_heads * c.head_dim;
  return {{qw, H}, {kw, H}, {kw, H}, {H, qw}, {I, H}, {I, H}, {H, I}};
}

double causal_scores(const ModelConfig& c, CalibrationShape data) {
  const double T = static_cast<double>(data.tokens);
  return static_cast<double>(data.sequences) * static_cast<double>(c.num_heads) * T * (T + 1) / 2;
}

const ModelShard* model_shard(const ModelDescription& model, const std::string& id) {
  for (const auto& s : model.shards)
    if (s.id == id) return &s;
  return nullptr;
}

}  // namespace

double layer_forward_flops(const ModelDescription& model, int64_t layer, CalibrationShape data) {
  const ModelConfig& c = model.config;
  double linear = 0;
  for (const auto& p : projections(c)) linear += static_cast<double>(p.rows) * static_cast<double>(p.cols);
  (void)layer;  // every layer of the supported architectures has the same projections
  const double tokens = static_cast<double>(data.sequences) * static_cast<double>(data.tokens);
  const double T = static_cast<double>(data.tokens);
  // Scores and the weighted sum: 2 x 2 x T^2 x (heads x head_dim) per sequence (the
  // benchmark's count: the full square, not the causal half).
  const double attention =
      4.0 * T * T * static_cast<double>(c.num_heads * c.head_dim) * static_cast<double>(data.sequences);
  return 2.0 * linear * tokens + attention;
}

double layer_hessian_flops(const ModelConfig& c, CalibrationShape data) {
  const double tokens = static_cast<double>(data.sequences) * static_cast<double>(data.tokens);
  const double H = static_cast<double>(c.hidden_size), I = static_cast<double>(c.intermediate_size),
               qw = static_cast<double>(c.num_heads * c.head_dim);
  return tokens * (2 * H * H + qw * qw + I * I);  // q/k/v in, o in, gate/up in, down in
}

TaskWork task_work(const ModelDescription& model, const CompressSettings& settings, CalibrationShape data,
                   const JobPlan& plan, const TaskPlan& task, const DeviceModel& device) {
  TaskWork w;
  const ShardPlan& shard = plan.shards(task.shard());
  const ModelConfig& c = model.config;
  if (const ModelShard* s = model_shard(model, shard.id())) w.weight_bytes = s->bytes;
  const double tokens = static_cast<double>(data.sequences) * static_cast<double>(data.tokens);
  GpuCalibrationPlan gpu;
  if (device.gpu && task.kind() != COMPRESS_LAYER)
    gpu = plan_gpu_calibration(c, settings, data.sequences, data.tokens, device.vram);
  switch (task.kind()) {
    case COMPRESS_LAYER:
      break;
    case FORWARD_LAYER:
      w.forward_flops = layer_forward_flops(model, shard.layer(), data);
      w.attention_scores = causal_scores(c, data);
      break;
    case EVAL_HEAD:
      w.head_flops = 2.0 * static_cast<double>(c.vocab_size) * static_cast<double>(c.hidden_size) * tokens;
      break;
    case CALIBRATE_STAGE: {
      // The original layer forward with the Hessians, the method, and (sequential, not
      // the last layer) the forward through the compressed layer for the next.
      const int passes = task.returns_activations() ? 2 : 1;
      w.forward_flops = layer_forward_flops(model, shard.layer(), data) * passes;
      w.attention_scores = causal_scores(c, data) * passes;
      w.hessian_flops = layer_hessian_flops(c, data);
      const GpuCalibrationPlan obs =
          plan_gpu_calibration(c, settings, data.sequences, data.tokens, device.gpu ? device.vram : UINT64_MAX);
      for (const auto& p : obs.projections) {
        const double loop = 2.0 * static_cast<double>(p.rows) * static_cast<double>(p.cols) * static_cast<double>(p.cols);
        w.obs_first_flops += loop;
        w.obs_search_flops += loop * (p.candidates - 1);
        w.obs_weights += static_cast<double>(p.rows) * static_cast<double>(p.cols);
        w.obs_loops += p.candidates;
      }
      break;
    }
    default:
      break;
  }
  if (device.gpu && task.kind() != COMPRESS_LAYER) {
    w.forward_on_cpu = gpu.sequences_per_batch == 0;
    w.vram = gpu.forward_bytes;
    for (const auto& p : gpu.projections) w.vram = std::max(w.vram, p.bytes);
  }
  return w;
}

double compute_seconds(const TaskWork& w, const DeviceModel& d) {
  // The RTN pass over the weights (calibrated tasks quantize too; the GPTQ loops are on top).
  double host = static_cast<double>(w.weight_bytes) / kCpuRtnBytesPerS;
  if (!d.gpu) {
    return host + (w.forward_flops + w.hessian_flops + w.head_flops) / kCpuForwardFlopsPerS +
           w.attention_scores * kCpuSecondsPerScore + w.obs_loops * kCpuSecondsPerObsLoop +
           w.obs_first_flops / kCpuObsFirstFlopsPerS + w.obs_search_flops / kCpuObsSearchFlopsPerS;
  }
  if (w.forward_flops == 0 && w.hessian_flops == 0 && w.obs_first_flops == 0 && w.head_flops == 0)
    return static_cast<double>(w.weight_bytes) / (d.bandwidth * kGpuBandwidthEfficiency);  // NF4 on the device
  double device = 0;
  host = 0;  // the measured host part below covers the GPU path's passes over the weights
  if (w.forward_on_cpu)
    host += (w.forward_flops + w.hessian_flops) / kCpuForwardFlopsPerS;
  else
    device += w.forward_flops / (d.tflops * kGpuForwardEfficiency) + w.hessian_flops / (d.tflops * kGpuHessianEfficiency);
  device += w.head_flops / (d.tflops * kGpuForwardEfficiency);
  device += kH100ObsDeviceS * (w.obs_first_flops / kExaoneObsLoopFlops) * (kH100PeakFlops / d.tflops);
  host += kH100ObsHostS * (w.obs_weights / kExaoneObsWeights);
  return device + host;
}

}  // namespace sp::sim
