// The NF4 code book on the device (include from .cu files of kernels/ only): the CPU
// reference's own float values (ops/nf4_codebook.h) as constant memory, and the code of a
// scaled value — the number of midpoints below it — exactly as the CPU picks it.
#pragma once

#include "ops/nf4_codebook.h"

namespace sp::cuda {

static_assert(kNf4Levels == 16);

// The code book and midpoints of the CPU reference (ops/nf4_codebook.h), the same float
// values: code = number of midpoints below x.
#define SP_T(i) kNf4Threshold[i]
static __constant__ float kThreshold[15] = {SP_T(0), SP_T(1), SP_T(2),  SP_T(3),  SP_T(4),  SP_T(5),  SP_T(6), SP_T(7),
                                     SP_T(8), SP_T(9), SP_T(10), SP_T(11), SP_T(12), SP_T(13), SP_T(14)};
#undef SP_T
#define SP_C(i) kNf4Code[i]
static __constant__ float kCode[16] = {SP_C(0), SP_C(1), SP_C(2),  SP_C(3),  SP_C(4),  SP_C(5),  SP_C(6),  SP_C(7),
                                SP_C(8), SP_C(9), SP_C(10), SP_C(11), SP_C(12), SP_C(13), SP_C(14), SP_C(15)};
#undef SP_C

// Number of midpoints below s (NaN: none, code 0), as nf4_code_of on the CPU.
__device__ __forceinline__ unsigned char code_of(float s) {
  unsigned char q = 0;
#pragma unroll
  for (int t = 0; t < 15; ++t) q += s > kThreshold[t] ? 1 : 0;
  return q;
}

// The same count from a table: 128 bins of width 2/127 over [-1, 1] (the midpoints are
// at least 0.08 apart, so a bin holds at most one), each with the number of midpoints
// below it and the midpoint inside it (+inf if none): code = base + (s > midpoint). An
// s rounded into the neighbouring bin still gets the same count as long as no midpoint
// lies within rounding of a bin edge — Nf4Cuda.TableCodeEqualsTheCountForEveryFloat
// checks all 2^32 floats. Two shared-memory reads and a compare instead of 15 compares.
struct Nf4Bin {
  float midpoint;
  unsigned base;
};
constexpr int kNf4Bins = 128;

// Fills bins[kNf4Bins] (shared memory); every thread of the block calls it, then syncs.
__device__ __forceinline__ void nf4_fill_bins(Nf4Bin* bins) {
  for (int b = threadIdx.x; b < kNf4Bins; b += blockDim.x) {
    // Rounding picks bin b for s in about [2 (b - 1/2) / 127 - 1, 2 (b + 1/2) / 127 - 1).
    const float lo = 2.0f * (static_cast<float>(b) - 0.5f) / 127.0f - 1.0f, hi = 2.0f * (static_cast<float>(b) + 0.5f) / 127.0f - 1.0f;
    Nf4Bin bin{INFINITY, 0};
    for (int t = 0; t < 15; ++t) {
      if (kThreshold[t] < lo) ++bin.base;
      else if (kThreshold[t] < hi) bin.midpoint = kThreshold[t];
    }
    bins[b] = bin;
  }
}

__device__ __forceinline__ unsigned char code_of_bins(float s, const Nf4Bin* bins) {
  // t = (s + 1) / 2 saturated to [0, 1] (NaN -> 0) in one fma, then round(127 t) by adding
  // 1.5 * 2^23, which leaves the integer in the low mantissa bits: no clamps, no
  // float->int conversion. Explicit fmas: the bin need not be exact (see above).
  const float t = __saturatef(__fmaf_rn(s, 0.5f, 0.5f));
  const unsigned i = __float_as_uint(__fmaf_rn(t, 127.0f, 12582912.0f)) & 0x7fu;
  const Nf4Bin bin = bins[i];
  return static_cast<unsigned char>(bin.base + (s > bin.midpoint ? 1u : 0u));
}

}  // namespace sp::cuda
