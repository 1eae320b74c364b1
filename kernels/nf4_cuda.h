// NF4 quantize / dequantize on a CUDA device, byte-identical with the CPU reference
// (ops/nf4_ref.cc): the same blocks of the flattened tensor, absmax by an exact max
// reduction, codes from x * (1/absmax) with an IEEE reciprocal (--prec-div=true, no FMA
// contraction) against the same midpoints, element 2i in the high nibble. fp32 compute
// only (bf16/fp16 inputs are converted), nothing Pascal (sm_61) lacks. Double
// quantization of the absmax (1/64 of the data) stays on the host (ops/double_quant).
//
// Plain C++ header: callers need no CUDA headers. Errors come back as text (empty: ok),
// naming the CUDA call and the device's message; the device stays usable after them.
// Thread-safety: each call uses its own stream and buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sp {

enum class CudaInput : uint8_t { kF32, kF16, kBF16 };

struct CudaNf4Result {
  std::string error;            // empty on success
  size_t first_nonfinite = SIZE_MAX;  // index of the first NaN/Inf element, if any
  std::vector<uint8_t> packed;  // (n + 1) / 2 bytes
  std::vector<float> absmax;    // one per block
};

// Quantizes n elements (`src` in host memory) on device `device`.
CudaNf4Result nf4_quantize_cuda(int device, const void* src, CudaInput dtype, size_t n, size_t blocksize);

// out[i] = code[q_i] * absmax[i / blocksize] (host buffers); returns an error or "".
std::string nf4_dequantize_cuda(int device, const uint8_t* packed, const float* absmax, size_t n, size_t blocksize,
                                float* out);

// The bandwidth kernel picks codes from a table of bins (kernels/nf4_device.cuh); this
// counts the floats, over all 2^32 bit patterns, where that differs from the plain count
// of midpoints below (0 expected). For tests.
uint64_t nf4_table_mismatches_cuda(int device, std::string* error);

// Times the quantize kernel alone (device-resident input of n bf16 elements, `reps`
// launches): seconds per launch, and the device's peak memory bandwidth in bytes/s
// (from its memory clock and bus width). For benchmarks.
struct CudaKernelTiming {
  std::string error;
  double seconds = 0;
  double peak_bandwidth = 0;
  double copy_bandwidth = 0;  // a device-to-device copy of the input, bytes read + written per second
  std::string device_name;
};
CudaKernelTiming nf4_quantize_cuda_timing(int device, size_t n, size_t blocksize, int reps);

}  // namespace sp
