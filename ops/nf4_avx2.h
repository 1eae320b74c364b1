// AVX2 NF4 kernels (x86-64 with AVX2 + F16C). Same contract and bytes as the reference
// kernels in nf4.h. Deliberately includes nothing with inline code: this header is
// shared with a translation unit compiled with -mavx2, and inline functions from it could
// otherwise be merged into callers running on CPUs without AVX2.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/dtype.h"

namespace sp::avx2 {

size_t nf4_quantize(const void* src, DType dtype, size_t n, size_t blocksize, uint8_t* packed,
                    float* absmax);
void nf4_dequantize(const uint8_t* packed, const float* absmax, size_t n, size_t blocksize,
                    float* out);
void nf4_dequantize_bf16(const uint8_t* packed, const float* absmax, size_t n, size_t blocksize,
                         uint16_t* out);
// Eight codes at a time: the reference search's seven steps with gathers and blends.
void dynamic_codes(const float* map, const float* x, size_t n, float offset, float scale, uint8_t* codes);

}  // namespace sp::avx2

namespace sp {
// The scalar reference, used for tails (defined in nf4_ref.cc).
size_t nf4_quantize_ref(const void* src, DType dtype, size_t n, size_t blocksize, uint8_t* packed,
                        float* absmax);
void dynamic_codes_ref(const float* map, const float* x, size_t n, float offset, float scale, uint8_t* codes);
}  // namespace sp
