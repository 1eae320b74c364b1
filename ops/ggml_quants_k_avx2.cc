#include "ops/ggml_quants_k_avx2.h"

#include <immintrin.h>

namespace sp::ggml::avx2 {
namespace {

inline __m256i nearest_int8(__m256 v) {
  const __m256i i = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12582912.0f)));
  return _mm256_sub_epi32(_mm256_and_si256(i, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x00400000));
}

inline __m256i clamp8(__m256i l, int nmax) {
  return _mm256_max_epi32(_mm256_setzero_si256(), _mm256_min_epi32(_mm256_set1_epi32(nmax), l));
}

}  // namespace

void make_qkx_quants_x8(const float* x, const float* w, int nmax, float rmin, float rdelta, int nstep, bool qkx3,
                        uint8_t* Lout, float* the_min, float* scale_out) {
  constexpr int n = 32;
  __m256 X[n], W[n];
  for (int i = 0; i < n; ++i) {  // lane j = sub-block j
    X[i] = _mm256_setr_ps(x[i], x[32 + i], x[64 + i], x[96 + i], x[128 + i], x[160 + i], x[192 + i], x[224 + i]);
    W[i] = _mm256_setr_ps(w[i], w[32 + i], w[64 + i], w[96 + i], w[128 + i], w[160 + i], w[192 + i], w[224 + i]);
  }
  const __m256 zero = _mm256_setzero_ps();
  __m256 mn = X[0], mx = X[0];
  const __m256 sum_w0 = W[0];
  __m256 sum_w = sum_w0, sum_x = _mm256_mul_ps(sum_w0, X[0]);
  for (int i = 1; i < n; ++i) {
    mn = _mm256_min_ps(X[i], mn);  // x < min ? x : min
    mx = _mm256_max_ps(X[i], mx);  // x > max ? x : max
    sum_w = _mm256_add_ps(sum_w, W[i]);
    sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(W[i], X[i]));
  }
  mn = _mm256_blendv_ps(mn, zero, _mm256_cmp_ps(mn, zero, _CMP_GT_OQ));
  const __m256 early = qkx3 ? _mm256_cmp_ps(mx, mn, _CMP_LE_OQ) : _mm256_cmp_ps(mx, mn, _CMP_EQ_OQ);
  const __m256 mn_early = mn;
  const __m256 fnmax = _mm256_set1_ps(static_cast<float>(nmax));
  __m256 iscale = _mm256_div_ps(fnmax, _mm256_sub_ps(mx, mn));
  __m256 scale = _mm256_div_ps(_mm256_set1_ps(1.0f), iscale);
  __m256 best_mad = zero;
  __m256i L[n], Laux[n];
  for (int i = 0; i < n; ++i) {
    L[i] = clamp8(nearest_int8(_mm256_mul_ps(iscale, _mm256_sub_ps(X[i], mn))), nmax);
    __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, _mm256_cvtepi32_ps(L[i])), mn), X[i]);
    diff = _mm256_mul_ps(diff, diff);
    best_mad = _mm256_add_ps(best_mad, _mm256_mul_ps(W[i], diff));
  }
  for (int is = 0; is <= nstep; ++is) {
    const float num = rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax);
    iscale = _mm256_div_ps(_mm256_set1_ps(num), _mm256_sub_ps(mx, mn));
    __m256 sum_l = zero, sum_l2 = zero, sum_xl = zero;
    for (int i = 0; i < n; ++i) {
      Laux[i] = clamp8(nearest_int8(_mm256_mul_ps(iscale, _mm256_sub_ps(X[i], mn))), nmax);
      const __m256 fl = _mm256_cvtepi32_ps(Laux[i]);
      const __m256 wl = _mm256_mul_ps(W[i], fl);
      sum_l = _mm256_add_ps(sum_l, wl);
      sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, fl));
      sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, X[i]));
    }
    const __m256 D = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
    const __m256 dpos = _mm256_andnot_ps(early, _mm256_cmp_ps(D, zero, _CMP_GT_OQ));
    if (_mm256_movemask_ps(dpos) == 0) continue;
    __m256 this_scale = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), D);
    __m256 this_min = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), D);
    const __m256 tpos = _mm256_cmp_ps(this_min, zero, _CMP_GT_OQ);
    this_min = _mm256_blendv_ps(this_min, zero, tpos);
    this_scale = _mm256_blendv_ps(this_scale, _mm256_div_ps(sum_xl, sum_l2), tpos);
    __m256 mad = zero;
    for (int i = 0; i < n; ++i) {
      __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale, _mm256_cvtepi32_ps(Laux[i])), this_min), X[i]);
      diff = _mm256_mul_ps(diff, diff);
      mad = _mm256_add_ps(mad, _mm256_mul_ps(W[i], diff));
    }
    const __m256 better = _mm256_and_ps(dpos, _mm256_cmp_ps(mad, best_mad, _CMP_LT_OQ));
    if (_mm256_movemask_ps(better) == 0) continue;
    const __m256i b = _mm256_castps_si256(better);
    for (int i = 0; i < n; ++i) L[i] = _mm256_blendv_epi8(L[i], Laux[i], b);
    best_mad = _mm256_blendv_ps(best_mad, mad, better);
    scale = _mm256_blendv_ps(scale, this_scale, better);
    mn = _mm256_blendv_ps(mn, this_min, better);
  }
  // Sub-blocks that exited early: L = 0, scale 0, the_min = -min.
  scale = _mm256_blendv_ps(scale, zero, early);
  mn = _mm256_blendv_ps(mn, mn_early, early);
  const __m256 neg = _mm256_xor_ps(mn, _mm256_set1_ps(-0.0f));
  _mm256_storeu_ps(the_min, neg);
  _mm256_storeu_ps(scale_out, scale);
  const __m256i ei = _mm256_castps_si256(early);
  alignas(32) int32_t lanes[8];
  for (int i = 0; i < n; ++i) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_andnot_si256(ei, L[i]));
    for (int j = 0; j < 8; ++j) Lout[32 * j + i] = static_cast<uint8_t>(lanes[j]);
  }
}

void make_qx_quants_x8(const float* x, const float* qw, int nmax, int8_t* Lout, float* scale_out) {
  constexpr int n = 16;
  __m256 X[n], W[n];
  for (int i = 0; i < n; ++i) {  // lane j = sub-block j
    X[i] = _mm256_setr_ps(x[i], x[16 + i], x[32 + i], x[48 + i], x[64 + i], x[80 + i], x[96 + i], x[112 + i]);
    W[i] = qw ? _mm256_setr_ps(qw[i], qw[16 + i], qw[32 + i], qw[48 + i], qw[64 + i], qw[80 + i], qw[96 + i], qw[112 + i])
              : _mm256_mul_ps(X[i], X[i]);
  }
  const __m256 zero = _mm256_setzero_ps();
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 amax = zero, max = zero;
  for (int i = 0; i < n; ++i) {  // the signed value of the largest |x| (strict >: the first wins)
    const __m256 ax = _mm256_andnot_ps(sign, X[i]);
    const __m256 gt = _mm256_cmp_ps(ax, amax, _CMP_GT_OQ);
    amax = _mm256_blendv_ps(amax, ax, gt);
    max = _mm256_blendv_ps(max, X[i], gt);
  }
  const __m256 all_zero = _mm256_cmp_ps(amax, _mm256_set1_ps(1e-15f), _CMP_LT_OQ);
  const __m256i lo = _mm256_set1_epi32(-nmax), hi = _mm256_set1_epi32(nmax - 1), off = _mm256_set1_epi32(nmax);
  auto codes = [&](__m256 iscale, __m256i* l, __m256* sumlx, __m256* suml2) {
    *sumlx = zero, *suml2 = zero;
    for (int i = 0; i < n; ++i) {
      l[i] = _mm256_max_epi32(lo, _mm256_min_epi32(hi, nearest_int8(_mm256_mul_ps(iscale, X[i]))));
      const __m256 fl = _mm256_cvtepi32_ps(l[i]);
      *sumlx = _mm256_add_ps(*sumlx, _mm256_mul_ps(_mm256_mul_ps(W[i], X[i]), fl));
      *suml2 = _mm256_add_ps(*suml2, _mm256_mul_ps(_mm256_mul_ps(W[i], fl), fl));
    }
  };
  __m256i L[n], Laux[n];
  __m256 sumlx, suml2;
  codes(_mm256_div_ps(_mm256_set1_ps(static_cast<float>(-nmax)), max), L, &sumlx, &suml2);
  __m256 scale = _mm256_blendv_ps(_mm256_div_ps(sumlx, suml2), zero, _mm256_cmp_ps(suml2, zero, _CMP_EQ_OQ));
  __m256 best = _mm256_mul_ps(scale, sumlx);
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    const float num = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is));
    codes(_mm256_div_ps(_mm256_set1_ps(num), max), Laux, &sumlx, &suml2);
    const __m256 better = _mm256_andnot_ps(
        all_zero, _mm256_and_ps(_mm256_cmp_ps(suml2, zero, _CMP_GT_OQ),
                                _mm256_cmp_ps(_mm256_mul_ps(sumlx, sumlx), _mm256_mul_ps(best, suml2), _CMP_GT_OQ)));
    if (_mm256_movemask_ps(better) == 0) continue;
    const __m256i b = _mm256_castps_si256(better);
    for (int i = 0; i < n; ++i) L[i] = _mm256_blendv_epi8(L[i], Laux[i], b);
    scale = _mm256_blendv_ps(scale, _mm256_div_ps(sumlx, suml2), better);
    best = _mm256_blendv_ps(best, _mm256_mul_ps(scale, sumlx), better);
  }
  _mm256_storeu_ps(scale_out, _mm256_blendv_ps(scale, zero, all_zero));
  const __m256i zi = _mm256_castps_si256(all_zero);
  alignas(32) int32_t lanes[8];
  for (int i = 0; i < n; ++i) {  // l + nmax; an all-zero sub-block: every L 0
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_andnot_si256(zi, _mm256_add_epi32(L[i], off)));
    for (int j = 0; j < 8; ++j) Lout[16 * j + i] = static_cast<int8_t>(lanes[j]);
  }
}

}  // namespace sp::ggml::avx2
