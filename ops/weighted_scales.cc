#include "ops/weighted_scales.h"

#include <cmath>
#include <limits>

#include "ops/nf4.h"

namespace sp {
namespace {

// Σ h_j (w_j − decode(code(w_j / s)) · s)² over elements [begin, end) of the flattened weight.
double block_error(const std::vector<float>& w, int64_t cols, const std::vector<float>& hdiag, size_t begin, size_t end,
                   float s, BnbType type) {
  const float* code = bnb4_code(type);
  const float inv = 1.0f / s;
  double err = 0;
  for (size_t i = begin; i < end; ++i) {
    const float q = s > 0.0f ? code[bnb4_code_of(type, w[i] * inv)] * s : 0.0f;
    const double d = static_cast<double>(w[i]) - q;
    err += static_cast<double>(hdiag[i % static_cast<size_t>(cols)]) * d * d;
  }
  return err;
}

}  // namespace

WeightedScales weighted_block_scales(const std::vector<float>& w, int64_t rows, int64_t cols,
                                     const std::vector<float>& hdiag, int blocksize, BnbType type, bool double_quant) {
  const size_t n = static_cast<size_t>(rows * cols), bs = static_cast<size_t>(blocksize);
  const size_t nb = (n + bs - 1) / bs;
  std::vector<float> alphas;
  for (float a = kWeightedScaleLow; a <= kWeightedScaleHigh + 1e-6f; a += kWeightedScaleStep) alphas.push_back(a);
  WeightedScales out;
  out.absmax.assign(nb, 0.0f);
  std::vector<float> amax(nb, 0.0f);
  for (size_t i = 0; i < n; ++i) amax[i / bs] = std::fmax(amax[i / bs], std::fabs(w[i]));
  // Pass 1: the raw scale of each block (ties keep absmax: alpha 1 is tried first).
  for (size_t b = 0; b < nb; ++b) {
    const size_t begin = b * bs, end = std::min(n, begin + bs);
    float best_s = amax[b];
    double best = amax[b] > 0 ? block_error(w, cols, hdiag, begin, end, amax[b], type) : 0.0;
    if (amax[b] > 0)
      for (float a : alphas) {
        const float s = amax[b] * a;
        const double e = block_error(w, cols, hdiag, begin, end, s, type);
        if (e < best) best = e, best_s = s;
      }
    out.absmax[b] = best_s;
  }
  if (!double_quant) return out;
  // Pass 2: the offset and nested scales of those raw scales fixed, each block takes the
  // 8-bit code (among those its candidates round to) whose decoded scale errs least.
  DoubleQuantized dq = double_quantize(out.absmax);
  for (size_t b = 0; b < nb; ++b) {
    const size_t begin = b * bs, end = std::min(n, begin + bs);
    const float nested = dq.nested_absmax[b / kNestedBlockSize];
    auto decode = [&](uint8_t c) { return dq.map[c] * nested + dq.offset; };
    uint8_t best_c = dq.codes[b];
    double best = std::numeric_limits<double>::infinity();
    auto consider = [&](uint8_t c) {
      const float s = decode(c);
      if (!(s > 0.0f)) return;
      const double e = block_error(w, cols, hdiag, begin, end, s, type);
      if (e < best) best = e, best_c = c;
    };
    consider(dq.codes[b]);
    if (amax[b] > 0 && nested > 0)
      for (float a : alphas) consider(dynamic_code_of(dq.map.data(), (amax[b] * a - dq.offset) * (1.0f / nested)));
    dq.codes[b] = best_c;
    out.absmax[b] = decode(best_c);
  }
  out.dq = std::move(dq);
  return out;
}

}  // namespace sp
