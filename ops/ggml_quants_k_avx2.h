// AVX2 versions of the K-quants' sub-block search (ops/ggml_quant_helpers'
// make_qkx_quants): the eight sub-blocks of one super-block at once, one per lane, each lane
// doing exactly the scalar reference's operations in its order — separate multiplies and
// adds (no FMA), sums sequential per lane, IEEE division and compares — so the results are
// bit-identical to the scalar reference (tests/ops/ggml_quants_test.cc compares them).
// Compiled with -mavx2 only; chosen at run time.
#pragma once

#include <cstdint>

namespace sp::ggml::avx2 {

// make_qkx_quants for the 8 sub-blocks of 32 of one super-block: x[256] and w[256] in
// sub-block order; writes L[256], the_min[8] and scale[8].
void make_qkx_quants_x8(const float* x, const float* w, int nmax, float rmin, float rdelta, int nstep, bool qkx3,
                        uint8_t* L, float* the_min, float* scale);

// make_qx_quants(16, nmax, ..., rmse_type 1) for 8 sub-blocks of 16 (Q6_K's): x[128] and qw
// (128 weights, or null: x^2) in sub-block order; writes L[128] (l + nmax) and scale[8].
void make_qx_quants_x8(const float* x, const float* qw, int nmax, int8_t* L, float* scale);

}  // namespace sp::ggml::avx2
