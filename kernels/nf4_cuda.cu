#include "kernels/nf4_cuda.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "kernels/cuda_scope.h"
#include "kernels/nf4_device.cuh"

namespace sp {
namespace {
using cuda::code_of;
using cuda::kCode;
using cuda::kThreshold;
// A 16-bit element's bits to float: bf16 by a shift, f16 exactly by its fields (a
// conversion, no half arithmetic).
__device__ __forceinline__ float bf16_bits(unsigned h) { return __uint_as_float(h << 16); }
__device__ __forceinline__ float f16_bits(unsigned h) {
  const unsigned sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  if (exp == 0x1f) return __uint_as_float(sign | 0x7f800000u | (man << 13));
  if (exp != 0) return __uint_as_float(sign | ((exp + 112) << 23) | (man << 13));
  if (man == 0) return __uint_as_float(sign);
  return (sign ? -1.0f : 1.0f) * static_cast<float>(man) * 5.960464477539063e-08f;  // man * 2^-24, exact
}

template <CudaInput T>
__device__ __forceinline__ float load_t(const void* src, size_t i) {
  if constexpr (T == CudaInput::kBF16) return bf16_bits(static_cast<const uint16_t*>(src)[i]);
  if constexpr (T == CudaInput::kF16) return f16_bits(static_cast<const uint16_t*>(src)[i]);
  if constexpr (T == CudaInput::kF32) return static_cast<const float*>(src)[i];
}

__device__ __forceinline__ float load(const void* src, CudaInput t, size_t i) {
  switch (t) {
    case CudaInput::kBF16: return load_t<CudaInput::kBF16>(src, i);
    case CudaInput::kF16: return load_t<CudaInput::kF16>(src, i);
    default: return load_t<CudaInput::kF32>(src, i);
  }
}

// One CUDA block per NF4 block: max |x| by a shared-memory reduction (max is exact, so
// the order does not matter), then each thread codes pairs of elements.
__global__ void quantize_kernel(const void* src, CudaInput t, size_t n, size_t bs, unsigned char* packed,
                                float* absmax, unsigned long long* first_bad) {
  __shared__ float red[256];
  const size_t b = blockIdx.x;
  const size_t begin = b * bs, end = begin + bs < n ? begin + bs : n;
  float m = 0.0f;
  for (size_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const float x = load(src, t, i);
    if (!isfinite(x)) atomicMin(first_bad, static_cast<unsigned long long>(i));
    m = fmaxf(m, fabsf(x));
  }
  red[threadIdx.x] = m;
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + s]);
    __syncthreads();
  }
  const float amax = red[0];
  if (threadIdx.x == 0) absmax[b] = amax;
  const float inv = 1.0f / amax;  // IEEE (--prec-div=true); 0 gives inf and NaN codes -> 0, as the CPU
  // bs is even (>= 32), so pairs never straddle blocks; an odd n pads the last nibble.
  for (size_t i = begin + 2 * threadIdx.x; i < end; i += 2 * blockDim.x) {
    const unsigned char hi = code_of(__fmul_rn(load(src, t, i), inv));
    const float x1 = i + 1 < end ? load(src, t, i + 1) : 0.0f;
    const unsigned char lo = code_of(__fmul_rn(x1, inv));
    packed[i / 2] = static_cast<unsigned char>(hi << 4 | lo);
  }
}

// The bandwidth path for blocksizes 8 * L with L a power of two <= 32 (bitsandbytes'
// sizes 32 to 256). A warp covers a span of 256 elements: lane i loads elements
// [8i, 8i + 8) with one 16-byte load (the warp's load is 512 contiguous bytes), the L
// lanes of one NF4 block (always within the warp) reduce its max by shuffles, and each
// lane writes its 4 packed bytes (the warp's store is 128 contiguous bytes). Same
// arithmetic per element as quantize_kernel, so the same bytes. (Several spans per warp
// in flight measured slower on an H100: more registers, lower occupancy.)
constexpr size_t kSpan = 256;

// Elements [base, base + 8) with 16-byte loads (zeros past n).
template <CudaInput T>
__device__ __forceinline__ void load8(const void* src, size_t base, size_t n, float (&x)[8]) {
  if (base + 8 <= n) {
    if constexpr (T == CudaInput::kF32) {
      const float4 a = *reinterpret_cast<const float4*>(static_cast<const float*>(src) + base);
      const float4 b = *reinterpret_cast<const float4*>(static_cast<const float*>(src) + base + 4);
      x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w, x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
    } else {
      const uint4 v = *reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(src) + base);
      const unsigned w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        x[2 * k] = T == CudaInput::kBF16 ? bf16_bits(w[k] & 0xffffu) : f16_bits(w[k] & 0xffffu);
        x[2 * k + 1] = T == CudaInput::kBF16 ? bf16_bits(w[k] >> 16) : f16_bits(w[k] >> 16);
      }
    }
    return;
  }
#pragma unroll
  for (int k = 0; k < 8; ++k) x[k] = base + k < n ? load_t<T>(src, base + k) : 0.0f;
}

template <int L, CudaInput T>
__device__ __forceinline__ void quantize_span(const void* src, size_t n, unsigned char* packed, float* absmax,
                                              unsigned long long* first_bad, const cuda::Nf4Bin* bins, unsigned lane,
                                              size_t warp) {
  const size_t base = (warp * 32 + lane) * 8;
  float x[8];
  float m = 0.0f, sum = 0.0f;  // a NaN or Inf makes the sum non-finite (so can overflow: then we look)
  if (base < n) {
    load8<T>(src, base, n, x);
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      sum += x[k];
      m = fmaxf(m, fabsf(x[k]));
    }
    if (!isfinite(sum))  // rare: find the first non-finite element, if any (padding past n is 0)
      for (int k = 0; k < 8; ++k)
        if (!isfinite(x[k])) {
          atomicMin(first_bad, static_cast<unsigned long long>(base + k));
          break;
        }
  }
#pragma unroll
  for (int o = L / 2; o > 0; o /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o, L));
  if (base >= n) return;
  if (lane % L == 0) absmax[base / (8 * L)] = m;
  const float inv = 1.0f / m;  // IEEE, as quantize_kernel
  unsigned bytes = 0;
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const unsigned hi = cuda::code_of_bins(__fmul_rn(x[2 * k], inv), bins);
    const unsigned lo = cuda::code_of_bins(__fmul_rn(x[2 * k + 1], inv), bins);
    bytes |= (hi << 4 | lo) << (8 * k);
  }
  if (base + 8 <= n) {
    *reinterpret_cast<unsigned*>(packed + base / 2) = bytes;
  } else {
    for (size_t k = 0; 2 * k < n - base; ++k) packed[base / 2 + k] = static_cast<unsigned char>(bytes >> (8 * k));
  }
}

// A persistent grid: each warp takes spans with a stride of all warps, so the table is
// built once per block.
template <int L, CudaInput T>
__global__ void __launch_bounds__(256) quantize_vec_kernel(const void* src, size_t n, unsigned char* packed,
                                                           float* absmax, unsigned long long* first_bad) {
  __shared__ cuda::Nf4Bin bins[cuda::kNf4Bins];
  cuda::nf4_fill_bins(bins);
  __syncthreads();
  const unsigned lane = threadIdx.x % 32;
  const size_t warps = static_cast<size_t>(gridDim.x) * blockDim.x / 32;
  for (size_t warp = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32; warp * kSpan < n;
       warp += warps)
    quantize_span<L, T>(src, n, packed, absmax, first_bad, bins, lane, warp);
}

__global__ void dequantize_kernel(const unsigned char* packed, const float* absmax, size_t n, size_t bs, float* out) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const unsigned char byte = packed[i / 2];
  const unsigned q = (i % 2 == 0) ? byte >> 4 : byte & 0x0f;
  out[i] = __fmul_rn(kCode[q], absmax[i / bs]);
}

// bf16 values spread over (-0.05, 0.05) by a hash of the index.
__global__ void fill_kernel(uint16_t* v, size_t n) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  unsigned h = static_cast<unsigned>(i) * 2654435761u;
  h ^= h >> 15;
  h *= 2246822519u;
  h ^= h >> 13;
  const float x = (static_cast<float>(h >> 8) / 16777216.0f - 0.5f) * 0.1f;
  v[i] = static_cast<uint16_t>(__float_as_uint(x) >> 16);
}

// Counts the floats (all 2^32 bit patterns) whose table code differs from the count.
__global__ void code_check_kernel(unsigned long long* mismatches) {
  __shared__ cuda::Nf4Bin bins[cuda::kNf4Bins];
  cuda::nf4_fill_bins(bins);
  __syncthreads();
  unsigned long long local = 0;
  const unsigned long long stride = static_cast<unsigned long long>(gridDim.x) * blockDim.x;
  for (unsigned long long i = static_cast<unsigned long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < (1ull << 32);
       i += stride) {
    const float s = __uint_as_float(static_cast<unsigned>(i));
    local += code_of(s) != cuda::code_of_bins(s, bins);
  }
  if (local) atomicAdd(mismatches, local);
}

size_t input_size(CudaInput t) { return t == CudaInput::kF32 ? 4 : 2; }

using cuda::Scope;

// The device side of one quantization: input, codes, absmax, first-NaN flag.
struct QuantizeBuffers {
  void* src = nullptr;
  unsigned char* packed = nullptr;
  float* absmax = nullptr;
  unsigned long long* bad = nullptr;
  size_t n = 0, blocks = 0;
};

bool alloc_quantize(Scope& s, size_t n, size_t blocksize, size_t input_bytes, QuantizeBuffers* b) {
  b->n = n;
  b->blocks = (n + blocksize - 1) / blocksize;
  b->src = s.alloc<unsigned char>(input_bytes, "cudaMalloc(input)");
  b->packed = s.alloc<unsigned char>((n + 1) / 2, "cudaMalloc(packed)");
  b->absmax = s.alloc<float>(b->blocks, "cudaMalloc(absmax)");
  b->bad = s.alloc<unsigned long long>(1, "cudaMalloc(flag)");
  return s.error.empty();
}

template <int L>
void launch_vec(Scope& s, const QuantizeBuffers& b, CudaInput t) {
  const size_t warps = (b.n + kSpan - 1) / kSpan;
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, s.device);
  const auto blocks = static_cast<unsigned>(std::min<size_t>((warps * 32 + 255) / 256, static_cast<size_t>(std::max(sms, 1)) * 16));
  switch (t) {
    case CudaInput::kBF16:
      quantize_vec_kernel<L, CudaInput::kBF16><<<blocks, 256, 0, s.stream>>>(b.src, b.n, b.packed, b.absmax, b.bad);
      break;
    case CudaInput::kF16:
      quantize_vec_kernel<L, CudaInput::kF16><<<blocks, 256, 0, s.stream>>>(b.src, b.n, b.packed, b.absmax, b.bad);
      break;
    case CudaInput::kF32:
      quantize_vec_kernel<L, CudaInput::kF32><<<blocks, 256, 0, s.stream>>>(b.src, b.n, b.packed, b.absmax, b.bad);
      break;
  }
  s.check(cudaGetLastError(), "quantize kernel launch");
}

void launch_quantize(Scope& s, const QuantizeBuffers& b, CudaInput t, size_t blocksize) {
  if (b.blocks == 0) return;
  switch (blocksize) {  // the vector path needs every NF4 block inside one warp
    case 32: return launch_vec<4>(s, b, t);
    case 64: return launch_vec<8>(s, b, t);
    case 128: return launch_vec<16>(s, b, t);
    case 256: return launch_vec<32>(s, b, t);
    default: break;
  }
  quantize_kernel<<<static_cast<unsigned>(b.blocks), 256, 0, s.stream>>>(b.src, t, b.n, blocksize, b.packed, b.absmax,
                                                                        b.bad);
  s.check(cudaGetLastError(), "quantize kernel launch");
}

}  // namespace

CudaNf4Result nf4_quantize_cuda(int device, const void* src, CudaInput dtype, size_t n, size_t blocksize) {
  CudaNf4Result r;
  Scope s;
  const size_t nb = (n + blocksize - 1) / blocksize;
  if (blocksize < 32 || blocksize % 2 != 0) {
    r.error = "NF4 blocksize must be an even number >= 32";
    return r;
  }
  QuantizeBuffers d;
  if (!s.start(device) || !alloc_quantize(s, n, blocksize, n * input_size(dtype), &d)) {
    r.error = s.error;
    return r;
  }
  const unsigned long long none = ~0ull;
  s.check(cudaMemcpyAsync(d.src, src, n * input_size(dtype), cudaMemcpyHostToDevice, s.stream), "copy input");
  s.check(cudaMemcpyAsync(d.bad, &none, sizeof none, cudaMemcpyHostToDevice, s.stream), "copy flag");
  launch_quantize(s, d, dtype, blocksize);
  r.packed.resize((n + 1) / 2);
  r.absmax.resize(nb);
  unsigned long long bad = none;
  s.check(cudaMemcpyAsync(r.packed.data(), d.packed, r.packed.size(), cudaMemcpyDeviceToHost, s.stream), "copy packed");
  s.check(cudaMemcpyAsync(r.absmax.data(), d.absmax, nb * sizeof(float), cudaMemcpyDeviceToHost, s.stream),
          "copy absmax");
  s.check(cudaMemcpyAsync(&bad, d.bad, sizeof bad, cudaMemcpyDeviceToHost, s.stream), "copy flag");
  s.check(cudaStreamSynchronize(s.stream), "quantize kernel");
  r.error = s.error;
  if (bad != none) r.first_nonfinite = static_cast<size_t>(bad);
  return r;
}

std::string nf4_dequantize_cuda(int device, const uint8_t* packed, const float* absmax, size_t n, size_t blocksize,
                                float* out) {
  Scope s;
  const size_t nb = (n + blocksize - 1) / blocksize;
  if (!s.start(device)) return s.error;
  auto* d_packed = s.alloc<unsigned char>((n + 1) / 2, "cudaMalloc(packed)");
  auto* d_absmax = s.alloc<float>(nb, "cudaMalloc(absmax)");
  auto* d_out = s.alloc<float>(n, "cudaMalloc(out)");
  if (!s.error.empty()) return s.error;
  s.check(cudaMemcpyAsync(d_packed, packed, (n + 1) / 2, cudaMemcpyHostToDevice, s.stream), "copy packed");
  s.check(cudaMemcpyAsync(d_absmax, absmax, nb * sizeof(float), cudaMemcpyHostToDevice, s.stream), "copy absmax");
  if (n > 0) {
    dequantize_kernel<<<static_cast<unsigned>((n + 255) / 256), 256, 0, s.stream>>>(d_packed, d_absmax, n, blocksize,
                                                                                  d_out);
    s.check(cudaGetLastError(), "dequantize kernel launch");
  }
  s.check(cudaMemcpyAsync(out, d_out, n * sizeof(float), cudaMemcpyDeviceToHost, s.stream), "copy out");
  s.check(cudaStreamSynchronize(s.stream), "dequantize kernel");
  return s.error;
}

uint64_t nf4_table_mismatches_cuda(int device, std::string* error) {
  Scope s;
  unsigned long long* d = nullptr;
  unsigned long long count = 0;
  if (s.start(device) && (d = s.alloc<unsigned long long>(1, "cudaMalloc(count)")) != nullptr) {
    s.check(cudaMemsetAsync(d, 0, sizeof count, s.stream), "cudaMemset");
    code_check_kernel<<<4096, 256, 0, s.stream>>>(d);
    s.launched("code check kernel");
    s.check(cudaMemcpyAsync(&count, d, sizeof count, cudaMemcpyDeviceToHost, s.stream), "copy count");
    s.sync("code check");
  }
  if (error) *error = s.error;
  return count;
}

CudaKernelTiming nf4_quantize_cuda_timing(int device, size_t n, size_t blocksize, int reps) {
  CudaKernelTiming r;
  Scope s;
  if (!s.start(device)) {
    r.error = s.error;
    return r;
  }
  cudaDeviceProp p{};
  s.check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
  r.device_name = p.name;
  int clock_khz = 0, bus_bits = 0;
  s.check(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device), "memory clock");
  s.check(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device), "bus width");
  r.peak_bandwidth = 2.0 * clock_khz * 1e3 * bus_bits / 8.0;  // double data rate
  QuantizeBuffers d;
  if (!alloc_quantize(s, n, blocksize, n * 2, &d)) {
    r.error = s.error;
    return r;
  }
  // Varied values (the codes, and so the table lookups, differ from lane to lane).
  fill_kernel<<<static_cast<unsigned>((n + 255) / 256), 256, 0, s.stream>>>(static_cast<uint16_t*>(d.src), n);
  s.launched("fill kernel");
  cudaEvent_t a = nullptr, b = nullptr;
  s.check(cudaEventCreate(&a), "cudaEventCreate");
  s.check(cudaEventCreate(&b), "cudaEventCreate");
  launch_quantize(s, d, CudaInput::kBF16, blocksize);  // warm-up
  s.check(cudaEventRecord(a, s.stream), "cudaEventRecord");
  for (int i = 0; i < reps; ++i) launch_quantize(s, d, CudaInput::kBF16, blocksize);
  s.check(cudaEventRecord(b, s.stream), "cudaEventRecord");
  s.check(cudaEventSynchronize(b), "quantize kernels");
  float ms = 0;
  s.check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  r.seconds = ms / 1e3 / reps;
  // The reference a kernel can hope for: a device-to-device copy of the input.
  void* copy = s.alloc<unsigned char>(n * 2, "cudaMalloc(copy)");
  if (copy) {
    s.check(cudaMemcpyAsync(copy, d.src, n * 2, cudaMemcpyDeviceToDevice, s.stream), "copy");
    s.check(cudaEventCreate(&a), "cudaEventCreate");
    s.check(cudaEventCreate(&b), "cudaEventCreate");
    s.check(cudaEventRecord(a, s.stream), "cudaEventRecord");
    for (int i = 0; i < reps; ++i)
      s.check(cudaMemcpyAsync(copy, d.src, n * 2, cudaMemcpyDeviceToDevice, s.stream), "copy");
    s.check(cudaEventRecord(b, s.stream), "cudaEventRecord");
    s.check(cudaEventSynchronize(b), "copies");
    s.check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    r.copy_bandwidth = 2.0 * n * 2 / (ms / 1e3 / reps);
  }
  r.error = s.error;
  return r;
}

}  // namespace sp
