// The helpers llama.cpp's reference quantizers share (../shared/docs/gguf-format.md §6.1,
// §6.3-§6.5, §6.11): nearest_int, the symmetric and asymmetric scale searches, the 6-bit
// sub-scale search of the K-quants with an importance matrix, IQ4_NL's table lookup, and
// fp16 fields. Every operation in float32 in the reference's order (the project builds with
// -ffp-contract=off): these are what make our bytes equal llama-quantize's.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <cstring>

#include "common/half.h"

namespace sp::ggml {

// Round to nearest, ties to even, for |v| < 2^22 (the float trick of the reference).
inline int nearest_int(float v) {
  const float t = v + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &t, 4);
  return (i & 0x007fffff) - 0x00400000;
}

inline void put_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

inline float get_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// The scale below which a group counts as all zero (GROUP_MAX_EPS).
constexpr float kGroupMaxEps = 1e-15f;

// Symmetric: codes L[i] in 0..2*nmax-1 (l + nmax), returns the scale (§6.3, rmse_type 1).
// Weights qw, or x*x when null.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, const float* qw);

// Asymmetric with a min: codes L in 0..nmax, returns the scale and sets *the_min (>= 0,
// subtracted) (§6.4). `qkx3` selects make_qkx3_quants' early exit (max <= min).
float make_qkx_quants(int n, int nmax, const float* x, const float* w, uint8_t* L, float* the_min, float rmin,
                      float rdelta, int nstep, bool qkx3);

// Positive values to 6-bit (nmax) codes with weights (§6.5).
float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* w);

// IQ4_NL's non-linear grid and the index of its nearest entry (§5.7, §6.11).
extern const int8_t kIq4nlValues[16];
int best_index_iq4nl(float x);

}  // namespace sp::ggml
