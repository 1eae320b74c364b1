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

// The same count by binary search over the 15 ascending midpoints `t` (kept in shared
// memory by the caller, where lanes may read different entries at no cost): 4 compares
// instead of 15. NaN compares false everywhere: code 0, as above.
__device__ __forceinline__ unsigned char code_of_search(float s, const float* t) {
  unsigned q = s > t[7] ? 8u : 0u;
  q += s > t[q + 3] ? 4u : 0u;
  q += s > t[q + 1] ? 2u : 0u;
  q += s > t[q] ? 1u : 0u;
  return static_cast<unsigned char>(q);
}

}  // namespace sp::cuda
