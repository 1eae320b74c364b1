// AVX2 NF4 kernels. Compiled with -mavx2 -mf16c (never -mfma or fast-math: the codes
// depend on the IEEE product x * (1/absmax), as in the reference). Every loop ends in a
// scalar tail taken from the reference, so the bytes are identical.
#include "ops/nf4_avx2.h"

#include <immintrin.h>

#include <cstring>

#include "ops/nf4_codebook.h"

namespace sp::avx2 {
namespace {

template <DType D>
inline __m256 load8(const void* src, size_t i) {
  if constexpr (D == DType::kF32) {
    return _mm256_loadu_ps(static_cast<const float*>(src) + i);
  } else if constexpr (D == DType::kBF16) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(src) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(src) + i));
    return _mm256_cvtph_ps(h);
  }
}

// max |x| over [i, i+len) (len a multiple of 8); sets *nonfinite if any element is NaN/Inf.
template <DType D>
inline float block_absmax(const void* src, size_t i, size_t len, bool* nonfinite) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i max_finite = _mm256_set1_epi32(0x7f7fffff);
  __m256 vmax = _mm256_setzero_ps();
  __m256i bad = _mm256_setzero_si256();
  for (size_t j = 0; j < len; j += 8) {
    const __m256 a = _mm256_andnot_ps(sign, load8<D>(src, i + j));
    vmax = _mm256_max_ps(vmax, a);
    bad = _mm256_or_si256(bad, _mm256_cmpgt_epi32(_mm256_castps_si256(a), max_finite));
  }
  *nonfinite = !_mm256_testz_si256(bad, bad);
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

// Codes (0..15, int32 lanes) of 8 scaled values: the count of thresholds below s.
inline __m256i codes8(__m256 s) {
  __m256i acc = _mm256_setzero_si256();
  for (size_t j = 0; j < kNf4Levels - 1; ++j) {
    const __m256 gt = _mm256_cmp_ps(s, _mm256_set1_ps(kNf4Threshold[j]), _CMP_GT_OQ);
    acc = _mm256_sub_epi32(acc, _mm256_castps_si256(gt));  // true lanes are -1
  }
  return acc;
}

// 32 code bytes (one per element, in order) -> 16 packed bytes in 16-bit lanes.
inline __m256i pair_nibbles(__m256i b) {
  const __m256i hi = _mm256_and_si256(_mm256_slli_epi16(b, 4), _mm256_set1_epi16(0x00f0));
  const __m256i lo = _mm256_srli_epi16(b, 8);
  return _mm256_or_si256(hi, lo);
}

// Quantizes 64 elements starting at i: the first 32 scaled by inv_a, the next by inv_b.
template <DType D>
inline void quantize64(const void* src, size_t i, __m256 inv_a, __m256 inv_b, uint8_t* out) {
  __m256i c[8];
  for (int k = 0; k < 8; ++k)
    c[k] = codes8(_mm256_mul_ps(load8<D>(src, i + 8 * k), k < 4 ? inv_a : inv_b));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const __m256i b0 = _mm256_permutevar8x32_epi32(
      _mm256_packus_epi16(_mm256_packs_epi32(c[0], c[1]), _mm256_packs_epi32(c[2], c[3])), order);
  const __m256i b1 = _mm256_permutevar8x32_epi32(
      _mm256_packus_epi16(_mm256_packs_epi32(c[4], c[5]), _mm256_packs_epi32(c[6], c[7])), order);
  const __m256i packed =
      _mm256_permute4x64_epi64(_mm256_packus_epi16(pair_nibbles(b0), pair_nibbles(b1)), 0xd8);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), packed);
}

template <DType D>
size_t quantize_impl(const void* src, size_t n, size_t bs, uint8_t* packed, float* absmax) {
  const size_t full_blocks = n / bs;
  const size_t step = bs >= 64 ? 1 : 64 / bs;  // blocks per outer step (bs 32: two)
  size_t b = 0;
  for (; b + step <= full_blocks; b += step) {
    const size_t begin = b * bs;
    __m256 inv[2];
    for (size_t k = 0; k < step; ++k) {
      bool bad = false;
      const float amax = block_absmax<D>(src, begin + k * bs, bs, &bad);
      if (bad) return nf4_quantize_ref(src, D, n, bs, packed, absmax);  // finds the index
      absmax[b + k] = amax;
      inv[k] = _mm256_set1_ps(1.0f / amax);
    }
    if (step == 1) inv[1] = inv[0];
    for (size_t j = 0; j < bs * step; j += 64)
      quantize64<D>(src, begin + j, inv[0], inv[1], packed + (begin + j) / 2);
  }
  const size_t done = b * bs;
  if (done == n) return static_cast<size_t>(-1);
  const size_t elem = D == DType::kF32 ? 4 : 2;
  const size_t r = nf4_quantize_ref(static_cast<const uint8_t*>(src) + done * elem, D, n - done, bs,
                                    packed + done / 2, absmax + b);
  return r == static_cast<size_t>(-1) ? r : r + done;
}

// Codes of 16 consecutive elements (8 packed bytes at p) as two int32 vectors.
inline void unpack16(const uint8_t* p, __m256i* idx0, __m256i* idx1) {
  const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  const __m128i mask = _mm_set1_epi8(0x0f);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
  const __m128i lo = _mm_and_si128(v, mask);
  const __m128i codes = _mm_unpacklo_epi8(hi, lo);
  *idx0 = _mm256_cvtepu8_epi32(codes);
  *idx1 = _mm256_cvtepu8_epi32(_mm_srli_si128(codes, 8));
}

inline __m256 lookup(__m256i idx, __m256 tab_lo, __m256 tab_hi) {
  const __m256 lo = _mm256_permutevar8x32_ps(tab_lo, idx);
  const __m256 hi = _mm256_permutevar8x32_ps(tab_hi, idx);
  const __m256i upper = _mm256_cmpgt_epi32(idx, _mm256_set1_epi32(7));
  return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(upper));
}

inline __m256i to_bf16_bits(__m256 f) {
  const __m256i u = _mm256_castps_si256(f);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  return _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb)), 16);
}

inline float code_at(const uint8_t* packed, size_t i) {
  const uint8_t byte = packed[i / 2];
  return kNf4Code[(i % 2 == 0) ? byte >> 4 : byte & 0x0f];
}

inline uint16_t bf16_scalar(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

}  // namespace

size_t nf4_quantize(const void* src, DType dtype, size_t n, size_t blocksize, uint8_t* packed,
                    float* absmax) {
  switch (dtype) {
    case DType::kBF16: return quantize_impl<DType::kBF16>(src, n, blocksize, packed, absmax);
    case DType::kF16: return quantize_impl<DType::kF16>(src, n, blocksize, packed, absmax);
    default: return quantize_impl<DType::kF32>(src, n, blocksize, packed, absmax);
  }
}

void nf4_dequantize(const uint8_t* packed, const float* absmax, size_t n, size_t blocksize,
                    float* out) {
  const __m256 tab_lo = _mm256_loadu_ps(kNf4Code);
  const __m256 tab_hi = _mm256_loadu_ps(kNf4Code + 8);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {  // 16 divides every block size: one scale per group
    const __m256 scale = _mm256_set1_ps(absmax[i / blocksize]);
    __m256i idx0, idx1;
    unpack16(packed + i / 2, &idx0, &idx1);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(lookup(idx0, tab_lo, tab_hi), scale));
    _mm256_storeu_ps(out + i + 8, _mm256_mul_ps(lookup(idx1, tab_lo, tab_hi), scale));
  }
  for (; i < n; ++i) out[i] = code_at(packed, i) * absmax[i / blocksize];
}

void nf4_dequantize_bf16(const uint8_t* packed, const float* absmax, size_t n, size_t blocksize,
                         uint16_t* out) {
  const __m256 tab_lo = _mm256_loadu_ps(kNf4Code);
  const __m256 tab_hi = _mm256_loadu_ps(kNf4Code + 8);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 scale = _mm256_set1_ps(absmax[i / blocksize]);
    __m256i idx0, idx1;
    unpack16(packed + i / 2, &idx0, &idx1);
    const __m256i r0 = to_bf16_bits(_mm256_mul_ps(lookup(idx0, tab_lo, tab_hi), scale));
    const __m256i r1 = to_bf16_bits(_mm256_mul_ps(lookup(idx1, tab_lo, tab_hi), scale));
    const __m256i h = _mm256_permute4x64_epi64(_mm256_packus_epi32(r0, r1), 0xd8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), h);
  }
  for (; i < n; ++i) out[i] = bf16_scalar(code_at(packed, i) * absmax[i / blocksize]);
}

void dynamic_codes(const float* map, const float* x, size_t n, float offset, float scale, uint8_t* codes) {
  const __m256 off = _mm256_set1_ps(offset), sc = _mm256_set1_ps(scale), half = _mm256_set1_ps(0.5f);
  const __m256 first = _mm256_set1_ps(map[0]), last = _mm256_set1_ps(map[255]);
  const __m256i zero = _mm256_setzero_si256(), top = _mm256_set1_epi32(255);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    // The reference's steps (ops/double_quant.cc dynamic_code_of) lane by lane.
    const __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), off), sc);
    __m256i pivot = _mm256_set1_epi32(127), upper_pivot = top, lower_pivot = zero;
    __m256 lower = _mm256_set1_ps(-1.0f), upper = _mm256_set1_ps(1.0f);
    __m256 val = _mm256_i32gather_ps(map, pivot, 4);
    for (int step = 64; step > 0; step >>= 1) {
      const __m256 above = _mm256_cmp_ps(v, val, _CMP_GT_OQ);
      const __m256i a = _mm256_castps_si256(above);
      lower_pivot = _mm256_blendv_epi8(lower_pivot, pivot, a);
      lower = _mm256_blendv_ps(lower, val, above);
      upper_pivot = _mm256_blendv_epi8(pivot, upper_pivot, a);
      upper = _mm256_blendv_ps(val, upper, above);
      pivot = _mm256_add_epi32(pivot, _mm256_blendv_epi8(_mm256_set1_epi32(-step), _mm256_set1_epi32(step), a));
      val = _mm256_i32gather_ps(map, pivot, 4);
    }
    upper = _mm256_blendv_ps(upper, last, _mm256_castsi256_ps(_mm256_cmpeq_epi32(upper_pivot, top)));
    lower = _mm256_blendv_ps(lower, first, _mm256_castsi256_ps(_mm256_cmpeq_epi32(lower_pivot, zero)));
    const __m256 above = _mm256_cmp_ps(v, val, _CMP_GT_OQ);
    const __m256 mid = _mm256_mul_ps(_mm256_add_ps(_mm256_blendv_ps(lower, upper, above), val), half);
    const __m256i up = _mm256_blendv_epi8(pivot, upper_pivot, _mm256_castps_si256(_mm256_cmp_ps(v, mid, _CMP_GT_OQ)));
    const __m256i down = _mm256_blendv_epi8(pivot, lower_pivot, _mm256_castps_si256(_mm256_cmp_ps(v, mid, _CMP_LT_OQ)));
    alignas(32) int32_t out[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(out), _mm256_blendv_epi8(down, up, _mm256_castps_si256(above)));
    for (int k = 0; k < 8; ++k) codes[i + static_cast<size_t>(k)] = static_cast<uint8_t>(out[k]);
  }
  dynamic_codes_ref(map, x + i, n - i, offset, scale, codes + i);
}

}  // namespace sp::avx2
