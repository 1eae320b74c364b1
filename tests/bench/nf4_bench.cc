// NF4 quantize/dequantize throughput on the largest matrix of EXAONE-4.0-32B
// (27392 x 5120, BF16), single thread, per backend. Bytes/s count the BF16 input
// (2 bytes per element) for both directions, so the figures compare directly.
//   build/bin/bench_nf4 [--benchmark_filter=avx2]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "common/half.h"
#include "ops/double_quant.h"
#include "ops/nf4.h"

namespace sp {
namespace {

constexpr int64_t kRows = 27392, kCols = 5120;
constexpr size_t kN = static_cast<size_t>(kRows) * kCols;

const std::vector<uint16_t>& weights() {
  static const std::vector<uint16_t> w = [] {
    std::vector<uint16_t> v(kN);
    std::mt19937 rng(42);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    for (auto& x : v) x = f32_to_bf16(nd(rng));
    return v;
  }();
  return w;
}

// The backend of the benchmark's first argument, or nullptr (and the run skipped) when
// this CPU cannot run it.
const Nf4Backend* available_backend(benchmark::State& st) {
  const Nf4Backend* b = &nf4_backends()[static_cast<size_t>(st.range(0))];
  if (b->available()) return b;
  st.SkipWithError("backend not available on this CPU");
  return nullptr;
}

// The matrix quantized once (codes and absmax), for the benchmarks that start from it.
const Nf4Tensor& quantized() {
  static const Nf4Tensor q = [] {
    Nf4Tensor t{std::vector<uint8_t>(nf4_packed_bytes(kN)), std::vector<float>(nf4_num_blocks(kN, 64))};
    nf4_best_backend().quantize(weights().data(), DType::kBF16, kN, 64, t.packed.data(), t.absmax.data());
    return t;
  }();
  return q;
}

void BM_Quantize(benchmark::State& st) {
  const Nf4Backend* b = available_backend(st);
  if (!b) return;
  st.SetLabel(b->name);
  const auto& w = weights();
  std::vector<uint8_t> packed(nf4_packed_bytes(kN));
  std::vector<float> absmax(nf4_num_blocks(kN, 64));
  for (auto _ : st) {
    benchmark::DoNotOptimize(b->quantize(w.data(), DType::kBF16, kN, 64, packed.data(), absmax.data()));
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * static_cast<int64_t>(kN * 2));
}

void BM_Dequantize(benchmark::State& st) {
  const Nf4Backend* b = available_backend(st);
  if (!b) return;
  const bool to_bf16 = st.range(1) != 0;
  st.SetLabel(std::string(b->name) + (to_bf16 ? " -> bf16" : " -> f32"));
  const auto& [packed, absmax] = quantized();
  std::vector<float> out32(to_bf16 ? 0 : kN);
  std::vector<uint16_t> out16(to_bf16 ? kN : 0);
  for (auto _ : st) {
    if (to_bf16) b->dequantize_bf16(packed.data(), absmax.data(), kN, 64, out16.data());
    else b->dequantize(packed.data(), absmax.data(), kN, 64, out32.data());
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * static_cast<int64_t>(kN * 2));
}

// Double quantization of the matrix's absmax values (one per 64 weights), as a job does
// after each NF4 quantize; bytes/s count the BF16 weights they belong to.
void BM_DoubleQuantize(benchmark::State& st) {
  const std::vector<float>& absmax = quantized().absmax;
  for (auto _ : st) {
    benchmark::DoNotOptimize(double_quantize(absmax));
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * static_cast<int64_t>(kN * 2));
}

// Double quantization's 8-bit code search alone, per backend, on the matrix's absmax
// values (one per 64 weights); bytes/s count the BF16 weights they belong to.
void BM_DynamicCodes(benchmark::State& st) {
  const Nf4Backend* b = available_backend(st);
  if (!b) return;
  st.SetLabel(b->name);
  const std::vector<float>& absmax = quantized().absmax;
  const float offset = absmax_mean(absmax);
  float amax = 0;
  for (float a : absmax) amax = std::max(amax, std::fabs(a - offset));
  std::vector<uint8_t> codes(absmax.size());
  for (auto _ : st) {
    b->dynamic_codes(dynamic_map_signed().data(), absmax.data(), absmax.size(), offset, 1.0f / amax, codes.data());
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * static_cast<int64_t>(kN * 2));
}

void backends(benchmark::internal::Benchmark* b) {
  for (size_t i = 0; i < nf4_backends().size(); ++i) b->Arg(static_cast<int64_t>(i));
}

void backends_and_outputs(benchmark::internal::Benchmark* b) {
  for (size_t i = 0; i < nf4_backends().size(); ++i) {
    b->Args({static_cast<int64_t>(i), 0});
    b->Args({static_cast<int64_t>(i), 1});
  }
}

BENCHMARK(BM_Quantize)->Apply(backends)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(BM_DynamicCodes)->Apply(backends)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_DoubleQuantize)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(BM_Dequantize)->Apply(backends_and_outputs)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();

}  // namespace
}  // namespace sp

BENCHMARK_MAIN();
