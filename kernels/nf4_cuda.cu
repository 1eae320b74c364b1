#include "kernels/nf4_cuda.h"

#include <cuda_runtime.h>

#include <string>

#include "ops/nf4_codebook.h"

namespace sp {
namespace {
static_assert(kNf4Levels == 16);

// The code book and midpoints of the CPU reference (ops/nf4_codebook.h), the same float
// values: code = number of midpoints below x.
#define SP_T(i) kNf4Threshold[i]
__constant__ float kThreshold[15] = {SP_T(0), SP_T(1), SP_T(2),  SP_T(3),  SP_T(4),  SP_T(5),  SP_T(6), SP_T(7),
                                     SP_T(8), SP_T(9), SP_T(10), SP_T(11), SP_T(12), SP_T(13), SP_T(14)};
#undef SP_T
#define SP_C(i) kNf4Code[i]
__constant__ float kCode[16] = {SP_C(0), SP_C(1), SP_C(2),  SP_C(3),  SP_C(4),  SP_C(5),  SP_C(6),  SP_C(7),
                                SP_C(8), SP_C(9), SP_C(10), SP_C(11), SP_C(12), SP_C(13), SP_C(14), SP_C(15)};
#undef SP_C

__device__ __forceinline__ float load(const void* src, CudaInput t, size_t i) {
  switch (t) {
    case CudaInput::kBF16: return __uint_as_float(static_cast<unsigned>(static_cast<const uint16_t*>(src)[i]) << 16);
    case CudaInput::kF16: {
      // Exact half -> float by bits (a conversion, no half arithmetic).
      const unsigned h = static_cast<const uint16_t*>(src)[i];
      const unsigned sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
      if (exp == 0x1f) return __uint_as_float(sign | 0x7f800000u | (man << 13));
      if (exp != 0) return __uint_as_float(sign | ((exp + 112) << 23) | (man << 13));
      if (man == 0) return __uint_as_float(sign);
      return (sign ? -1.0f : 1.0f) * static_cast<float>(man) * 5.960464477539063e-08f;  // man * 2^-24, exact
    }
    default: return static_cast<const float*>(src)[i];
  }
}

__device__ __forceinline__ unsigned char code_of(float s) {
  unsigned char q = 0;
#pragma unroll
  for (int t = 0; t < 15; ++t) q += s > kThreshold[t] ? 1 : 0;
  return q;
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

__global__ void dequantize_kernel(const unsigned char* packed, const float* absmax, size_t n, size_t bs, float* out) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const unsigned char byte = packed[i / 2];
  const unsigned q = (i % 2 == 0) ? byte >> 4 : byte & 0x0f;
  out[i] = __fmul_rn(kCode[q], absmax[i / bs]);
}

size_t input_size(CudaInput t) { return t == CudaInput::kF32 ? 4 : 2; }

// RAII device buffers and a stream; the first failing call's message is kept.
struct Scope {
  std::string error;
  cudaStream_t stream = nullptr;
  std::vector<void*> buffers;
  bool check(cudaError_t rc, const char* what) {
    if (rc != cudaSuccess && error.empty()) error = std::string(what) + ": " + cudaGetErrorString(rc);
    return rc == cudaSuccess;
  }
  void* alloc(size_t bytes, const char* what) {
    void* p = nullptr;
    if (!check(cudaMalloc(&p, bytes ? bytes : 1), what)) return nullptr;
    buffers.push_back(p);
    return p;
  }
  bool start(int device) {
    return check(cudaSetDevice(device), "cudaSetDevice") && check(cudaStreamCreate(&stream), "cudaStreamCreate");
  }
  ~Scope() {
    for (void* p : buffers) cudaFree(p);
    if (stream) cudaStreamDestroy(stream);
  }
};

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
  b->src = s.alloc(input_bytes, "cudaMalloc(input)");
  b->packed = static_cast<unsigned char*>(s.alloc((n + 1) / 2, "cudaMalloc(packed)"));
  b->absmax = static_cast<float*>(s.alloc(b->blocks * sizeof(float), "cudaMalloc(absmax)"));
  b->bad = static_cast<unsigned long long*>(s.alloc(sizeof(unsigned long long), "cudaMalloc(flag)"));
  return s.error.empty();
}

void launch_quantize(Scope& s, const QuantizeBuffers& b, CudaInput t, size_t blocksize) {
  if (b.blocks == 0) return;
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
  auto* d_packed = static_cast<unsigned char*>(s.alloc((n + 1) / 2, "cudaMalloc(packed)"));
  auto* d_absmax = static_cast<float*>(s.alloc(nb * sizeof(float), "cudaMalloc(absmax)"));
  auto* d_out = static_cast<float*>(s.alloc(n * sizeof(float), "cudaMalloc(out)"));
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
  s.check(cudaMemsetAsync(d.src, 0x3c, n * 2, s.stream), "fill input");  // bf16 0x3c3c: finite values
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
  r.error = s.error;
  return r;
}

}  // namespace sp
