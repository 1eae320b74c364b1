// bitsandbytes double quantization of NF4 absmax values (nf4-format.md §6):
// offset = mean(absmax); (absmax - offset) quantized blockwise (256) with the signed
// 8-bit dynamic map; decoding gives code[q] * nested_absmax + offset.
//
// Thread-safety: pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace sp {

inline constexpr int kNestedBlockSize = 256;

// create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8) as torch >= 2.0 on
// x86 computes it (FMA linspace): 256 increasing float32 values, [127] = 0, [255] = 1.
const std::array<float, 256>& dynamic_map_signed();

// Index of x in `code` as bitsandbytes' CUDA dQuantize<0> picks it: 7-step binary search
// from 127, then a midpoint test; the nearest entry, exact ties to the even index.
uint8_t dynamic_code_of(const float* code, float x);

// Mean of absmax in float32 (float64 accumulation, rounded once).
float absmax_mean(std::span<const float> absmax);

struct DoubleQuantized {
  float offset = 0.0f;
  std::vector<uint8_t> codes;          // one per absmax entry
  std::vector<float> nested_absmax;    // one per 256 entries
  std::array<float, 256> map{};        // the dynamic map used (stored as nested_quant_map)
};

// Quantizes with a given map and offset (what tests use with golden values).
DoubleQuantized double_quantize(std::span<const float> absmax, float offset,
                                const std::array<float, 256>& map);
// Quantizes with offset = absmax_mean(absmax) and dynamic_map_signed().
DoubleQuantized double_quantize(std::span<const float> absmax);

// Decodes absmax values: out[i] = map[codes[i]] * nested_absmax[i / 256] + offset.
void double_dequantize(std::span<const uint8_t> codes, std::span<const float> nested_absmax,
                       float offset, const float* map, float* out);

}  // namespace sp
