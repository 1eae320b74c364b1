#include "ops/ggml_quants.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "common/half.h"

namespace sp {
namespace {

// --- F32, F16, BF16: plain conversions (§5.1)
void quantize_f32(const float* x, uint8_t* out, int64_t n) { std::memcpy(out, x, static_cast<size_t>(n) * 4); }
void dequantize_f32(const uint8_t* in, float* y, int64_t n) { std::memcpy(y, in, static_cast<size_t>(n) * 4); }

template <uint16_t (*To)(float)>
void quantize_half(const float* x, uint8_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
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

void put_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

float get_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// --- Q8_0: d (fp16), 32 x int8 (§5.2, §6.6: quantize_row_q8_0_ref)
void quantize_q8_0(const float* x, uint8_t* out, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32, out += 34) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(out, d);
    for (int j = 0; j < 32; ++j) out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::roundf(x[j] * id)));
  }
}

void dequantize_q8_0(const uint8_t* in, float* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, in += 34, y += 32) {
    const float d = get_f16(in);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(in[2 + j])) * d;
  }
}

// --- Q4_0: d (fp16), 16 bytes of nibbles: element j low, j + 16 high (§5.3, §6.7)
void quantize_q4_0(const float* x, uint8_t* out, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32, out += 18) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; ++j)
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(out, d);
    for (int j = 0; j < 16; ++j) {
      const float x0 = x[j] * id, x1 = x[16 + j] * id;
      const uint8_t q0 = static_cast<uint8_t>(std::min<int>(15, static_cast<int8_t>(x0 + 8.5f)));
      const uint8_t q1 = static_cast<uint8_t>(std::min<int>(15, static_cast<int8_t>(x1 + 8.5f)));
      out[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void dequantize_q4_0(const uint8_t* in, float* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, in += 18, y += 32) {
    const float d = get_f16(in);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((in[2 + j] & 0x0F) - 8) * d;
      y[16 + j] = static_cast<float>((in[2 + j] >> 4) - 8) * d;
    }
  }
}

constexpr GgmlTypeTraits kTypes[] = {
    {GgmlType::kF32, "F32", 1, 4, 0, quantize_f32, dequantize_f32},
    {GgmlType::kF16, "F16", 1, 2, 1, quantize_half<f32_to_f16>, dequantize_half<f16_to_f32>},
    {GgmlType::kQ4_0, "Q4_0", 32, 18, 2, quantize_q4_0, dequantize_q4_0},
    {GgmlType::kQ8_0, "Q8_0", 32, 34, 7, quantize_q8_0, dequantize_q8_0},
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

std::vector<uint8_t> ggml_quantize(GgmlType t, std::span<const float> x, int64_t row, int threads) {
  const GgmlTypeTraits& tr = ggml_traits(t);
  if (row <= 0 || row % tr.block != 0 || static_cast<int64_t>(x.size()) % row != 0)
    throw std::invalid_argument("ggml_quantize: rows must be whole blocks");
  std::vector<uint8_t> out(ggml_nbytes(t, static_cast<int64_t>(x.size())));
  const int64_t rows = static_cast<int64_t>(x.size()) / row;
  const int64_t parts = std::clamp<int64_t>(threads, 1, rows);
  auto part = [&](int64_t p) {
    const int64_t r0 = rows * p / parts, r1 = rows * (p + 1) / parts;
    tr.quantize(x.data() + r0 * row, out.data() + ggml_nbytes(t, r0 * row), (r1 - r0) * row);
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
