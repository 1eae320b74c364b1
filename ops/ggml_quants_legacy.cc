// llama.cpp's 32-weight block types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and IQ4_NL
// (../shared/docs/gguf-format.md §5.2-§5.7 layouts, §6.6-§6.8 and §6.11 quantizers).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "ops/ggml_quant_helpers.h"
#include "ops/ggml_quant_rows.h"

namespace sp::ggml {
namespace {

constexpr int kQ = 32;

// The signed value of largest magnitude (strict >, first wins).
float signed_max(const float* x, int n, float* amax_out = nullptr) {
  float amax = 0, max = 0;
  for (int j = 0; j < n; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  if (amax_out) *amax_out = amax;
  return max;
}

// Nibbles: element j low, j + 16 high; with `qh`, bit 4 of element j -> bit j.
void pack4(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((L[j] & 0x0F) | ((L[j + 16] & 0x0F) << 4));
}
void pack5(const uint8_t* L, uint8_t* qh_out, uint8_t* qs) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    qh |= ((L[j] & 0x10u) >> 4) << j;
    qh |= ((L[j + 16] & 0x10u) >> 4) << (j + 16);
  }
  pack4(L, qs);
  std::memcpy(qh_out, &qh, 4);
}
void unpack5(const uint8_t* qh_in, const uint8_t* qs, int* q) {
  uint32_t qh;
  std::memcpy(&qh, qh_in, 4);
  for (int j = 0; j < 16; ++j) {
    q[j] = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
    q[j + 16] = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
  }
}

// Per-element weights of the imatrix paths: qw * sqrt(sigma2 + x^2).
void block_weights(const float* x, const float* qw, float sigma2, float* w) {
  for (int j = 0; j < kQ; ++j) w[j] = qw[j] * std::sqrt(sigma2 + x[j] * x[j]);
}
float row_sigma2(const float* x, int64_t n) {
  float s = 0;
  for (int64_t j = 0; j < n; ++j) s += x[j] * x[j];
  return s / static_cast<float>(n);
}

// min and max of a block, from +-FLT_MAX (the _1 types).
void min_max(const float* x, float* mn, float* mx) {
  *mn = FLT_MAX, *mx = -FLT_MAX;
  for (int j = 0; j < kQ; ++j) {
    if (x[j] < *mn) *mn = x[j];
    if (x[j] > *mx) *mx = x[j];
  }
}

}  // namespace

// --- Q8_0: d, 32 x int8 (imatrix ignored)
void quantize_q8_0(const float* x, uint8_t* out, int64_t nrows, int64_t n_per_row, const float*) {
  for (int64_t b = 0; b < nrows * n_per_row / kQ; ++b, x += kQ, out += 34) {
    float amax = 0.0f;
    for (int j = 0; j < kQ; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(out, d);
    for (int j = 0; j < kQ; ++j) out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::roundf(x[j] * id)));
  }
}
void dequantize_q8_0(const uint8_t* in, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQ; ++b, in += 34, y += kQ) {
    const float d = get_f16(in);
    for (int j = 0; j < kQ; ++j) y[j] = static_cast<float>(static_cast<int8_t>(in[2 + j])) * d;
  }
}

namespace {

// Q4_0 / Q5_0 (symmetric: d, [qh,] nibbles; y = (q - nmax) d) and Q4_1 / Q5_1 (affine: d,
// m, [qh,] nibbles; y = q d + m), kBits 4 or 5: the reference rules without an importance
// vector, the weighted search (make_qx_quants / make_qkx3_quants) with one.
template <int kBits, bool kAffine>
void quantize_32(const float* x, uint8_t* out, int64_t nrows, int64_t n_per_row, const float* qw) {
  constexpr int kHead = kAffine ? 4 : 2;
  constexpr int kBytes = kHead + (kBits == 5 ? 4 : 0) + 16;
  constexpr int kLevels = 1 << kBits;  // 16 or 32
  uint8_t L[kQ];
  for (int64_t r = 0; r < nrows; ++r) {
    const float sigma2 = qw ? row_sigma2(x, n_per_row) : 0.0f;
    for (int64_t b = 0; b < n_per_row / kQ; ++b, x += kQ, out += kBytes) {
      float w[kQ];
      if (qw) block_weights(x, qw + b * kQ, sigma2, w);
      if (kAffine && qw) {
        float the_min;
        put_f16(out, make_qkx_quants(kQ, kLevels - 1, x, w, L, &the_min, -0.9f, 0.05f, 36, true));
        put_f16(out + 2, -the_min);
      } else if (kAffine) {
        float mn, mx;
        min_max(x, &mn, &mx);
        const float d = (mx - mn) / (kLevels - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(out, d);
        put_f16(out + 2, mn);
        for (int j = 0; j < kQ; ++j)
          L[j] = static_cast<uint8_t>(std::min<int>(kLevels - 1, static_cast<int8_t>((x[j] - mn) * id + 0.5f)));
      } else if (qw) {
        int8_t l8[kQ];
        put_f16(out, make_qx_quants(kQ, kLevels / 2, x, l8, w));
        for (int j = 0; j < kQ; ++j) L[j] = static_cast<uint8_t>(l8[j]);
      } else {
        const float d = signed_max(x, kQ) / -(kLevels / 2);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        constexpr float kOffset = kLevels / 2 + 0.5f;  // 8.5f, 16.5f
        for (int j = 0; j < kQ; ++j) L[j] = static_cast<uint8_t>(std::min<int>(kLevels - 1, static_cast<int8_t>(x[j] * id + kOffset)));
        put_f16(out, d);
      }
      if (kBits == 5) pack5(L, out + kHead, out + kHead + 4);
      else pack4(L, out + kHead);
    }
  }
}

template <int kBits, bool kAffine>
void dequantize_32(const uint8_t* in, float* y, int64_t n) {
  constexpr int kHead = kAffine ? 4 : 2;
  constexpr int kBytes = kHead + (kBits == 5 ? 4 : 0) + 16;
  int q[kQ];
  for (int64_t b = 0; b < n / kQ; ++b, in += kBytes, y += kQ) {
    const float d = get_f16(in);
    if (kBits == 5) {
      unpack5(in + kHead, in + kHead + 4, q);
    } else {
      for (int j = 0; j < 16; ++j) q[j] = in[kHead + j] & 0x0F, q[j + 16] = in[kHead + j] >> 4;
    }
    if (kAffine) {
      const float m = get_f16(in + 2);
      for (int j = 0; j < kQ; ++j) y[j] = static_cast<float>(q[j]) * d + m;
    } else {
      for (int j = 0; j < kQ; ++j) y[j] = static_cast<float>(q[j] - (1 << (kBits - 1))) * d;
    }
  }
}

}  // namespace

void quantize_q4_0(const float* x, uint8_t* o, int64_t r, int64_t n, const float* qw) { quantize_32<4, false>(x, o, r, n, qw); }
void quantize_q4_1(const float* x, uint8_t* o, int64_t r, int64_t n, const float* qw) { quantize_32<4, true>(x, o, r, n, qw); }
void quantize_q5_0(const float* x, uint8_t* o, int64_t r, int64_t n, const float* qw) { quantize_32<5, false>(x, o, r, n, qw); }
void quantize_q5_1(const float* x, uint8_t* o, int64_t r, int64_t n, const float* qw) { quantize_32<5, true>(x, o, r, n, qw); }
void dequantize_q4_0(const uint8_t* in, float* y, int64_t n) { dequantize_32<4, false>(in, y, n); }
void dequantize_q4_1(const uint8_t* in, float* y, int64_t n) { dequantize_32<4, true>(in, y, n); }
void dequantize_q5_0(const uint8_t* in, float* y, int64_t n) { dequantize_32<5, false>(in, y, n); }
void dequantize_q5_1(const uint8_t* in, float* y, int64_t n) { dequantize_32<5, true>(in, y, n); }

// --- IQ4_NL: d, nibbles indexing a non-linear grid; llama-quantize always searches 7
// tries either side (quantize_row_iq4_nl_impl, ntry 7), weights x^2 or the imatrix's.
void quantize_iq4_nl(const float* x, uint8_t* out, int64_t nrows, int64_t n_per_row, const float* qw) {
  const int8_t* values = kIq4nlValues;
  constexpr int ntry = 7;
  for (int64_t r = 0; r < nrows; ++r) {
    for (int64_t b = 0; b < n_per_row / kQ; ++b, x += kQ, out += 18) {
      float sigma2 = 0;
      for (int j = 0; j < kQ; ++j) sigma2 += x[j] * x[j];
      sigma2 *= 2.f / kQ;
      float w[kQ];
      if (qw) block_weights(x, qw + b * kQ, sigma2, w);
      else
        for (int j = 0; j < kQ; ++j) w[j] = x[j] * x[j];
      float amax;
      const float max = signed_max(x, kQ, &amax);
      float scale = 0;
      if (amax >= kGroupMaxEps) {
        float d = -max / static_cast<float>(values[0]);
        float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int j = 0; j < kQ; ++j) {
          const float q = values[best_index_iq4nl(id * x[j])];
          sumqx += w[j] * q * x[j];
          sumq2 += w[j] * q * q;
        }
        d = sumqx / sumq2;
        float best = d * sumqx;
        for (int itry = -ntry; itry <= ntry; ++itry) {
          id = static_cast<float>(itry + values[0]) / max;
          sumqx = sumq2 = 0;
          for (int j = 0; j < kQ; ++j) {
            const float q = values[best_index_iq4nl(id * x[j])];
            sumqx += w[j] * q * x[j];
            sumq2 += w[j] * q * q;
          }
          if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
          }
        }
        scale = d;
      }
      put_f16(out, scale);
      const float id = scale != 0.0f ? 1 / scale : 0.0f;
      uint8_t L[kQ];
      for (int j = 0; j < kQ; ++j) L[j] = static_cast<uint8_t>(best_index_iq4nl(id * x[j]));
      pack4(L, out + 2);
    }
  }
}
void dequantize_iq4_nl(const uint8_t* in, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQ; ++b, in += 18, y += kQ) {
    const float d = get_f16(in);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(kIq4nlValues[in[2 + j] & 0x0F]);
      y[16 + j] = d * static_cast<float>(kIq4nlValues[in[2 + j] >> 4]);
    }
  }
}

}  // namespace sp::ggml
