#include "ops/ggml_quants.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "common/half.h"
#include "ops/ggml_quant_rows.h"

namespace sp {
namespace {

// --- F32, F16, BF16: plain conversions (§5.1); the 32- and 256-blocks are in
// ggml_quants_legacy.cc and ggml_quants_k.cc.
void quantize_f32(const float* x, uint8_t* out, int64_t nrows, int64_t n_per_row, const float*) {
  std::memcpy(out, x, static_cast<size_t>(nrows * n_per_row) * 4);
}
void dequantize_f32(const uint8_t* in, float* y, int64_t n) { std::memcpy(y, in, static_cast<size_t>(n) * 4); }

template <uint16_t (*To)(float)>
void quantize_half(const float* x, uint8_t* out, int64_t nrows, int64_t n_per_row, const float*) {
  for (int64_t i = 0; i < nrows * n_per_row; ++i) {
    const uint16_t h = To(x[i]);
    std::memcpy(out + 2 * i, &h, 2);
  }
}

template <float (*From)(uint16_t)>
void dequantize_half(const uint8_t* in, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, in + 2 * i, 2);
    y[i] = From(h);
  }
}

using namespace ggml;  // the row functions

constexpr GgmlTypeTraits kTypes[] = {
    {GgmlType::kF32, "F32", 1, 4, 0, quantize_f32, dequantize_f32},
    {GgmlType::kF16, "F16", 1, 2, 1, quantize_half<f32_to_f16>, dequantize_half<f16_to_f32>},
    {GgmlType::kQ4_0, "Q4_0", 32, 18, 2, quantize_q4_0, dequantize_q4_0},
    {GgmlType::kQ4_1, "Q4_1", 32, 20, 3, quantize_q4_1, dequantize_q4_1},
    {GgmlType::kQ5_0, "Q5_0", 32, 22, 8, quantize_q5_0, dequantize_q5_0},
    {GgmlType::kQ5_1, "Q5_1", 32, 24, 9, quantize_q5_1, dequantize_q5_1},
    {GgmlType::kQ8_0, "Q8_0", 32, 34, 7, quantize_q8_0, dequantize_q8_0},
    {GgmlType::kQ4_K, "Q4_K", 256, 144, 15, quantize_q4_k, dequantize_q4_k},
    {GgmlType::kQ5_K, "Q5_K", 256, 176, 17, quantize_q5_k, dequantize_q5_k},
    {GgmlType::kQ6_K, "Q6_K", 256, 210, 18, quantize_q6_k, dequantize_q6_k},
    {GgmlType::kIQ4_NL, "IQ4_NL", 32, 18, 25, quantize_iq4_nl, dequantize_iq4_nl},
    {GgmlType::kBF16, "BF16", 1, 2, 32, quantize_half<f32_to_bf16>, dequantize_half<bf16_to_f32>},
};

}  // namespace

std::span<const GgmlTypeTraits> ggml_types() { return kTypes; }

const GgmlTypeTraits& ggml_traits(GgmlType t) {
  for (const auto& tr : kTypes)
    if (tr.type == t) return tr;
  throw std::logic_error("unknown ggml type");  // every GgmlType has a row
}

std::optional<GgmlType> ggml_type_from_name(std::string_view name) {
  for (const auto& tr : kTypes)
    if (tr.name.size() == name.size() &&
        std::equal(name.begin(), name.end(), tr.name.begin(),
                   [](char a, char b) { return std::toupper(static_cast<unsigned char>(a)) == b; }))
      return tr.type;
  return std::nullopt;
}

std::string ggml_type_names() {
  std::string out;
  for (const auto& tr : kTypes) {
    if (!out.empty()) out += ", ";
    out += tr.name;
  }
  return out;
}

std::vector<uint8_t> ggml_quantize(GgmlType t, std::span<const float> x, int64_t row, int threads,
                                   std::span<const float> importance) {
  const GgmlTypeTraits& tr = ggml_traits(t);
  if (row <= 0 || row % tr.block != 0 || static_cast<int64_t>(x.size()) % row != 0)
    throw std::invalid_argument("ggml_quantize: rows must be whole blocks");
  if (!importance.empty() && static_cast<int64_t>(importance.size()) != row)
    throw std::invalid_argument("ggml_quantize: one importance value per column");
  const float* qw = importance.empty() ? nullptr : importance.data();
  std::vector<uint8_t> out(ggml_nbytes(t, static_cast<int64_t>(x.size())));
  const int64_t rows = static_cast<int64_t>(x.size()) / row;
  const int64_t parts = std::clamp<int64_t>(threads, 1, rows);
  auto part = [&](int64_t p) {
    const int64_t r0 = rows * p / parts, r1 = rows * (p + 1) / parts;
    tr.quantize(x.data() + r0 * row, out.data() + ggml_nbytes(t, r0 * row), r1 - r0, row, qw);
  };
  std::vector<std::thread> pool;
  for (int64_t p = 1; p < parts; ++p) pool.emplace_back(part, p);
  part(0);
  for (auto& th : pool) th.join();
  return out;
}

std::vector<float> ggml_dequantize(GgmlType t, std::span<const uint8_t> bytes, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  ggml_traits(t).dequantize(bytes.data(), y.data(), n);
  return y;
}

}  // namespace sp
