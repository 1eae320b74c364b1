// Time per decoder layer of each calibration method, single thread, on one layer shaped
// like a 1B Llama (Llama-3.2-1B: hidden 2048, intermediate 8192, 32 heads, 8 KV heads)
// with synthetic bf16 weights and activations.
//   build/bin/bench_calibration [SEQUENCES=8] [TOKENS=512] [ONLY]   (ONLY: rows whose name contains it)
// Prints one row per method: the dense forward with Hessian accumulation (shared by all
// methods), and the whole calibrated layer (forward + statistics + prune/quantize +
// the next layer's activations).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "common/half.h"
#include "ops/calibrate_layer.h"
#include "ops/decoder_layer.h"
#include "ops/hessian.h"
#include "ops/linalg.h"

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

int main(int argc, char** argv) {
  using namespace sp;
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 8, T = argc > 2 ? std::atoll(argv[2]) : 512;
  set_blas_threads(1);
  auto config = parse_model_config(R"({"architectures":["LlamaForCausalLM"],"model_type":"llama",
    "hidden_size":2048,"intermediate_size":8192,"num_hidden_layers":16,"num_attention_heads":32,
    "num_key_value_heads":8,"vocab_size":128256,"rms_norm_eps":1e-5,"rope_theta":500000.0})", "1B layer");
  if (!config.ok()) return 1;
  // Layer 0's tensors, bf16, std 0.02 (norms 1).
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0, 0.02f);
  std::vector<ModelTensor> metas;
  std::vector<std::vector<uint8_t>> data;
  for (const ExpectedTensor& e : expected_tensors(*config)) {
    if (e.layer != 0) continue;
    ModelTensor t{e.name, e.role, 0, {DType::kBF16, e.shape}};
    std::vector<uint8_t> b(t.stored.nbytes());
    for (size_t i = 0; i < t.stored.numel(); ++i) {
      const uint16_t h = f32_to_bf16(e.shape.size() == 1 ? 1.0f : nd(rng));
      std::memcpy(b.data() + 2 * i, &h, 2);
    }
    metas.push_back(std::move(t));
    data.push_back(std::move(b));
  }
  std::vector<InputTensor> inputs;
  for (size_t i = 0; i < metas.size(); ++i) inputs.push_back({&metas[i], data[i]});
  Activations acts{n, T, config->hidden_size, std::vector<float>(static_cast<size_t>(n * T * config->hidden_size))};
  std::normal_distribution<float> an(0, 1.0f);
  for (float& v : acts.data) v = an(rng);

  std::printf("one 1B-shaped Llama layer (hidden 2048, intermediate 8192), %lld x %lld calibration tokens, 1 thread\n",
              static_cast<long long>(n), static_cast<long long>(T));
  {
    auto lw = load_layer_weights(*config, inputs);
    auto rope = rope_table(*config, T);
    std::vector<HessianAccumulator> acc;
    for (int i = 0; i < kLinearInputs; ++i) acc.emplace_back(linear_input_width(*config, static_cast<LinearInput>(i)));
    LinearTap tap = [&](LinearInput w, const float* x, int64_t t, int64_t) { acc[static_cast<int>(w)].add(x, t); };
    const auto t0 = Clock::now();
    std::vector<float> x(static_cast<size_t>(T * config->hidden_size));
    for (int64_t s = 0; s < n; ++s) {
      std::memcpy(x.data(), acts.row(s), x.size() * sizeof(float));
      decoder_layer_forward(*config, 0, *lw, *rope, x.data(), T, &tap);
    }
    std::printf("%-34s %8.2f s\n", "forward + 4 Hessians (shared)", since(t0));
  }
  struct Method {
    const char* name;
    CompressSettings s;
  };
  auto make = [](std::optional<PruneSettings> p, QuantMethod q, bool act_order, double search, bool quant = true,
                 BnbType type = BnbType::kNf4, ScaleChoice scales = ScaleChoice::kSearch) {
    CompressSettings s;
    s.prune = p;
    if (!quant) s.quantize.reset();
    if (quant) s.quantize->quant_type = type;
    s.quant_method = q;
    s.gptq.act_order = act_order;
    s.gptq.scale_search = search;
    s.gptq.scales = scales;
    return s;
  };
  const PruneSettings mag{PruneScope::kRow, 0.3, PruneMethod::kMagnitude};
  const PruneSettings wanda{PruneScope::kRow, 0.3, PruneMethod::kWanda};
  const PruneSettings sgpt{PruneScope::kRow, 0.3, PruneMethod::kSparseGpt};
  std::vector<Method> methods = {
      {"wanda 30% + RTN-NF4", make(wanda, QuantMethod::kRtn, false, 0)},
      {"GPTQ-NF4 (no scale search)", make(std::nullopt, QuantMethod::kGptq, false, 0)},
      {"GPTQ-NF4 act-order, search 0.1", make(std::nullopt, QuantMethod::kGptq, true, 0.1)},
      {"GPTQ-NF4 act-order, weighted scales",
       make(std::nullopt, QuantMethod::kGptq, true, 0.1, true, BnbType::kNf4, ScaleChoice::kWeighted)},
      {"GPTQ-FP4 act-order, search 0.1", make(std::nullopt, QuantMethod::kGptq, true, 0.1, true, BnbType::kFp4)},
      {"GPTQ-int8 act-order", make(std::nullopt, QuantMethod::kGptq, true, 0, true, BnbType::kInt8)},
      {"sparsegpt 30% (no NF4)", make(sgpt, QuantMethod::kRtn, false, 0, false)},
      {"sparsegpt 30% + RTN-NF4", make(sgpt, QuantMethod::kRtn, false, 0)},
      {"sparsegpt 30% + GPTQ-NF4 (joint)", make(sgpt, QuantMethod::kGptq, true, 0.1)},
      {"magnitude 30% + GPTQ-NF4", make(mag, QuantMethod::kGptq, true, 0.1)},
  };
  const std::string only = argc > 3 ? argv[3] : "";
  for (const Method& m : methods) {
    if (!only.empty() && std::string(m.name).find(only) == std::string::npos) continue;
    Activations a = acts;
    const auto t0 = Clock::now();
    auto r = calibrate_layer(*config, 0, inputs, a, m.s, true);
    if (!r.ok()) {
      std::printf("%-34s failed: %s\n", m.name, std::string(r.status().message()).c_str());
      continue;
    }
    std::printf("%-34s %8.2f s per layer\n", m.name, since(t0));
    std::fflush(stdout);
  }
  return 0;
}
