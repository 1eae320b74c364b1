// llama.cpp's K-quants: Q4_K, Q5_K (256-weight super-blocks of 8 sub-blocks with 6-bit
// scales and mins) and Q6_K (16 sub-blocks with int8 scales)
// (../shared/docs/gguf-format.md §5.8-§5.10 layouts, §6.9-§6.10 quantizers).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/ggml_quant_helpers.h"
#include "ops/ggml_quant_rows.h"
#ifdef SP_HAVE_AVX2_KERNELS
#include "ops/ggml_quants_k_avx2.h"
#endif

namespace sp::ggml {
namespace {

constexpr int kQK = 256;

// The 12 bytes of eight 6-bit scales and mins (§5.8).
void pack_scales_k4(const uint8_t* ls, const uint8_t* lm, uint8_t* s) {
  std::memset(s, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      s[j] = ls[j];
      s[j + 4] = lm[j];
    } else {
      s[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      s[j - 4] |= static_cast<uint8_t>((ls[j] >> 4) << 6);
      s[j] |= static_cast<uint8_t>((lm[j] >> 4) << 6);
    }
  }
}

void scale_min_k4(int j, const uint8_t* s, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// make_qkx_quants on the 8 sub-blocks of a super-block (x, w: 256 each), the scalar
// reference one after the other, or AVX2 with one sub-block per lane (the same bits).
void qkx_x8_scalar(const float* x, const float* w, int nmax, float rmin, float rdelta, int nstep, bool qkx3,
                   uint8_t* L, float* the_min, float* scale) {
  for (int j = 0; j < 8; ++j)
    scale[j] = make_qkx_quants(32, nmax, x + 32 * j, w + 32 * j, L + 32 * j, &the_min[j], rmin, rdelta, nstep, qkx3);
}

using QkxX8 = void (*)(const float*, const float*, int, float, float, int, bool, uint8_t*, float*, float*);
QkxX8 choose_qkx_x8() {
#ifdef SP_HAVE_AVX2_KERNELS
  if (__builtin_cpu_supports("avx2")) return avx2::make_qkx_quants_x8;
#endif
  return qkx_x8_scalar;
}
const QkxX8 qkx_x8 = choose_qkx_x8();

// make_qx_quants(16, nmax) on 8 sub-blocks of 16 (x, qw: 128 each; qw may be null).
void qx_x8_scalar(const float* x, const float* qw, int nmax, int8_t* L, float* scale) {
  for (int j = 0; j < 8; ++j) scale[j] = make_qx_quants(16, nmax, x + 16 * j, L + 16 * j, qw ? qw + 16 * j : nullptr);
}

using QxX8 = void (*)(const float*, const float*, int, int8_t*, float*);
QxX8 choose_qx_x8() {
#ifdef SP_HAVE_AVX2_KERNELS
  if (__builtin_cpu_supports("avx2")) return avx2::make_qx_quants_x8;
#endif
  return qx_x8_scalar;
}
const QxX8 qx_x8 = choose_qx_x8();

// One Q4_K/Q5_K super-block's scales, mins and codes (0..nmax) into `head` (d, dmin,
// scales[12]) and L[256]; the packing of the codes differs by type.
void quantize_super_k(const float* x, const float* qw, int nmax, uint8_t* head, uint8_t* L) {
  float scales[8], mins[8], weights[kQK];
  uint8_t ls[8], lm[8];
  if (!qw) {  // quantize_row_q{4,5}_K_ref
    const float rmin = nmax == 15 ? -1.0f : -0.5f;
    const int nstep = nmax == 15 ? 20 : 15;
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
      float sum_x2 = 0;
      for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
      const float av_x = std::sqrt(sum_x2 / 32);
      for (int l = 0; l < 32; ++l) weights[32 * j + l] = av_x + std::fabs(x[32 * j + l]);
    }
    qkx_x8(x, weights, nmax, rmin, 0.1f, nstep, false, L, mins, scales);
    for (int j = 0; j < 8; ++j) {
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; ++j) {
      ls[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j])));
      lm[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j])));
    }
    put_f16(head, max_scale / 63.f);
    put_f16(head + 2, max_min / 63.f);
  } else {  // quantize_row_q{4,5}_K_impl
    float sum_x2 = 0;
    for (int l = 0; l < kQK; ++l) sum_x2 += x[l] * x[l];
    const float sigma2 = 2 * sum_x2 / kQK;
    float sw[8];
    for (int j = 0; j < 8; ++j) {
      float* wj = weights + 32 * j;
      for (int l = 0; l < 32; ++l) wj[l] = qw[32 * j + l] * std::sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
      float sumw = 0;
      for (int l = 0; l < 32; ++l) sumw += wj[l];
      sw[j] = sumw;
    }
    qkx_x8(x, weights, nmax, -0.9f, 0.05f, 36, true, L, mins, scales);
    const float d_block = make_qp_quants(8, 63, scales, ls, sw);
    const float m_block = make_qp_quants(8, 63, mins, lm, sw);
    for (int j = 0; j < 8; ++j) ls[j] = std::min<uint8_t>(63, ls[j]), lm[j] = std::min<uint8_t>(63, lm[j]);
    put_f16(head, d_block);
    put_f16(head + 2, m_block);
  }
  pack_scales_k4(ls, lm, head + 4);
  const float d_all = get_f16(head), dmin_all = get_f16(head + 2);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    scale_min_k4(j, head + 4, &sc, &m);
    const float d = d_all * static_cast<float>(sc);
    if (d == 0.0f) continue;
    const float dm = dmin_all * static_cast<float>(m);
    for (int ii = 0; ii < 32; ++ii)
      L[32 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(nmax, nearest_int((x[32 * j + ii] + dm) / d))));
  }
}

void dequantize_super_k(const uint8_t* head, const int* q, float* y) {
  const float d_all = get_f16(head), dmin_all = get_f16(head + 2);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    scale_min_k4(j, head + 4, &sc, &m);
    const float d = d_all * static_cast<float>(sc), dm = dmin_all * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) y[32 * j + l] = d * static_cast<float>(q[32 * j + l]) - dm;
  }
}

// Q4_K: d, dmin, scales[12], qs[128]; Q5_K: the same with qh[32] (bit 4 of each code)
// before qs. The codes: 4 chunks of 64, chunk c's low nibbles in qs[32c + l] are element
// 64c + l, its high nibbles element 64c + 32 + l; Q5_K's bit 4 of those two is bit 2c and
// 2c + 1 of qh[l].
template <bool kFive>
void quantize_k(const float* x, uint8_t* out, int64_t nrows, int64_t n_per_row, const float* qw) {
  constexpr int kBytes = kFive ? 176 : 144;
  uint8_t L[kQK];
  for (int64_t r = 0; r < nrows; ++r)
    for (int64_t i = 0; i < n_per_row / kQK; ++i, x += kQK, out += kBytes) {
      quantize_super_k(x, qw ? qw + i * kQK : nullptr, kFive ? 31 : 15, out, L);
      uint8_t* qh = out + 16;
      uint8_t* qs = out + (kFive ? 48 : 16);
      if (kFive) std::memset(qh, 0, 32);
      for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l) {
          const int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
          if (kFive) qh[l] = static_cast<uint8_t>(qh[l] | ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
          qs[32 * c + l] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
        }
    }
}

template <bool kFive>
void dequantize_k(const uint8_t* in, float* y, int64_t n) {
  constexpr int kBytes = kFive ? 176 : 144;
  int q[kQK];
  for (int64_t i = 0; i < n / kQK; ++i, in += kBytes, y += kQK) {
    const uint8_t* qh = in + 16;
    const uint8_t* qs = in + (kFive ? 48 : 16);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) {
        q[64 * c + l] = (qs[32 * c + l] & 0xF) + (kFive ? 16 * ((qh[l] >> (2 * c)) & 1) : 0);
        q[64 * c + 32 + l] = (qs[32 * c + l] >> 4) + (kFive ? 16 * ((qh[l] >> (2 * c + 1)) & 1) : 0);
      }
    dequantize_super_k(in, q, y);
  }
}

}  // namespace

void quantize_q4_k(const float* x, uint8_t* out, int64_t nrows, int64_t n_per_row, const float* qw) {
  quantize_k<false>(x, out, nrows, n_per_row, qw);
}
void dequantize_q4_k(const uint8_t* in, float* y, int64_t n) { dequantize_k<false>(in, y, n); }
void quantize_q5_k(const float* x, uint8_t* out, int64_t nrows, int64_t n_per_row, const float* qw) {
  quantize_k<true>(x, out, nrows, n_per_row, qw);
}
void dequantize_q5_k(const uint8_t* in, float* y, int64_t n) { dequantize_k<true>(in, y, n); }

// --- Q6_K: ql[128], qh[64], int8 scales[16], d (last)
void quantize_q6_k(const float* x, uint8_t* out, int64_t nrows, int64_t n_per_row, const float* qw) {
  int8_t L[kQK];
  float scales[16];
  for (int64_t r = 0; r < nrows; ++r)
    for (int64_t i = 0; i < n_per_row / kQK; ++i, x += kQK, out += 210) {
      float max_scale = 0, max_abs_scale = 0;
      for (int half = 0; half < 2; ++half)
        qx_x8(x + 128 * half, qw ? qw + i * kQK + 128 * half : nullptr, 32, L + 128 * half, scales + 8 * half);
      for (int ib = 0; ib < 16; ++ib)
        if (std::fabs(scales[ib]) > max_abs_scale) max_abs_scale = std::fabs(scales[ib]), max_scale = scales[ib];
      std::memset(out, 0, 210);
      if (max_abs_scale < kGroupMaxEps) continue;  // all zero, d = 0
      const float iscale = -128.f / max_scale;
      put_f16(out + 208, 1 / iscale);
      int8_t* sc = reinterpret_cast<int8_t*>(out + 192);
      for (int ib = 0; ib < 16; ++ib) sc[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
      const float d_all = get_f16(out + 208);
      for (int j = 0; j < 16; ++j) {
        const float d = d_all * static_cast<float>(sc[j]);
        if (d == 0.0f) continue;
        for (int ii = 0; ii < 16; ++ii)
          L[16 * j + ii] = static_cast<int8_t>(std::max(-32, std::min(31, nearest_int(x[16 * j + ii] / d))) + 32);
      }
      uint8_t* ql = out;
      uint8_t* qh = out + 128;
      for (int j = 0; j < kQK; j += 128, ql += 64, qh += 32)
        for (int l = 0; l < 32; ++l) {
          const int a = L[j + l], b = L[j + l + 32], c = L[j + l + 64], e = L[j + l + 96];
          ql[l] = static_cast<uint8_t>((a & 0xF) | ((c & 0xF) << 4));
          ql[l + 32] = static_cast<uint8_t>((b & 0xF) | ((e & 0xF) << 4));
          qh[l] = static_cast<uint8_t>((a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6));
        }
    }
}
void dequantize_q6_k(const uint8_t* in, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, in += 210, y += kQK) {
    const float d = get_f16(in + 208);
    const int8_t* sc = reinterpret_cast<const int8_t*>(in + 192);
    for (int h = 0; h < 2; ++h)
      for (int l = 0; l < 32; ++l) {
        const uint8_t a = in[64 * h + l], b = in[64 * h + 32 + l], c = in[128 + 32 * h + l];
        const int q[4] = {(a & 0xF) | ((c & 3) << 4), (b & 0xF) | (((c >> 2) & 3) << 4), (a >> 4) | (((c >> 4) & 3) << 4),
                          (b >> 4) | (((c >> 6) & 3) << 4)};
        for (int k = 0; k < 4; ++k) {
          const int e = 128 * h + 32 * k + l;
          y[e] = d * static_cast<float>(sc[e / 16]) * static_cast<float>(q[k] - 32);
        }
      }
  }
}

}  // namespace sp::ggml
