#include "ops/double_quant.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/nf4.h"

namespace sp {
namespace {

std::array<float, 256> make_dynamic_map() {
  std::vector<float> data;
  const int max_exponent_bits = 7;
  for (int i = 0; i < max_exponent_bits; ++i) {
    const int steps = (1 << i) + 1;  // fraction items
    const float start = 0.1f, end = 1.0f;
    const float step = (end - start) / static_cast<float>(steps - 1);
    const int halfway = steps / 2;
    std::vector<float> b(static_cast<size_t>(steps));
    for (int k = 0; k < steps; ++k)
      b[static_cast<size_t>(k)] = k < halfway ? std::fma(step, static_cast<float>(k), start)
                                              : std::fma(-step, static_cast<float>(steps - k - 1), end);
    const float scale = static_cast<float>(std::pow(10.0, i - (max_exponent_bits - 1)));
    for (int k = 0; k + 1 < steps; ++k) {
      const float mean = (b[static_cast<size_t>(k)] + b[static_cast<size_t>(k) + 1]) / 2.0f;
      data.push_back(scale * mean);
      data.push_back(-scale * mean);
    }
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  std::sort(data.begin(), data.end());
  std::array<float, 256> out{};
  std::copy(data.begin(), data.end(), out.begin());
  return out;
}

}  // namespace

const std::array<float, 256>& dynamic_map_signed() {
  static const std::array<float, 256> map = make_dynamic_map();
  return map;
}

uint8_t dynamic_code_of(const float* code, float x) {
  int pivot = 127, upper_pivot = 255, lower_pivot = 0;
  float lower = -1.0f, upper = 1.0f;
  float val = code[pivot];
  for (int i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lower_pivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upper_pivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = code[pivot];
  }
  if (upper_pivot == 255) upper = code[upper_pivot];
  if (lower_pivot == 0) lower = code[lower_pivot];
  if (x > val) {
    const float mid = (upper + val) * 0.5f;
    return static_cast<uint8_t>(x > mid ? upper_pivot : pivot);
  }
  const float mid = (lower + val) * 0.5f;
  return static_cast<uint8_t>(x < mid ? lower_pivot : pivot);
}

float absmax_mean(std::span<const float> absmax) {
  if (absmax.empty()) return 0.0f;
  double sum = 0;
  for (float a : absmax) sum += a;
  return static_cast<float>(sum / static_cast<double>(absmax.size()));
}

DoubleQuantized double_quantize(std::span<const float> absmax, float offset,
                                const std::array<float, 256>& map) {
  DoubleQuantized dq;
  dq.offset = offset;
  dq.map = map;
  const size_t n = absmax.size();
  const size_t bs = kNestedBlockSize;
  dq.codes.resize(n);
  dq.nested_absmax.resize((n + bs - 1) / bs);
  for (size_t b = 0; b * bs < n; ++b) {
    const size_t begin = b * bs, end = std::min(n, begin + bs);
    float amax = 0.0f;
    for (size_t i = begin; i < end; ++i) {  // fmax(amax, d) without its call: NaN keeps amax
      const float d = std::fabs(absmax[i] - offset);
      amax = d > amax ? d : amax;
    }
    dq.nested_absmax[b] = amax;
    nf4_best_backend().dynamic_codes(map.data(), absmax.data() + begin, end - begin, offset, 1.0f / amax,
                                     dq.codes.data() + begin);
  }
  return dq;
}

DoubleQuantized double_quantize(std::span<const float> absmax) {
  return double_quantize(absmax, absmax_mean(absmax), dynamic_map_signed());
}

void double_dequantize(std::span<const uint8_t> codes, std::span<const float> nested_absmax,
                       float offset, const float* map, float* out) {
  for (size_t i = 0; i < codes.size(); ++i)
    out[i] = map[codes[i]] * nested_absmax[i / kNestedBlockSize] + offset;
}

}  // namespace sp
