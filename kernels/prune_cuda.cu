#include "kernels/prune_cuda.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

namespace sp {
namespace {

__device__ __forceinline__ unsigned long long key_of(const float* w, unsigned long long i) {
  return (static_cast<unsigned long long>(__float_as_uint(w[i]) & 0x7fffffffu) << 32) | (i & 0xffffffffull);
}

// Zeroes the k smallest keys of w[begin, begin + len) (keys use the index within the
// group). One block; 8 radix passes over the 64-bit keys find the k-th smallest exactly.
__global__ void select_prune_kernel(float* w, unsigned long long len, unsigned long long stride, unsigned long long k) {
  float* g = w + static_cast<unsigned long long>(blockIdx.x) * stride;
  if (k == 0) return;
  if (k >= len) {
    for (unsigned long long i = threadIdx.x; i < len; i += blockDim.x) g[i] = 0.0f;
    return;
  }
  __shared__ unsigned int hist[256];
  __shared__ unsigned long long prefix, mask, rank;
  if (threadIdx.x == 0) {
    prefix = 0;
    mask = 0;
    rank = k;  // 1-based rank of the key we look for
  }
  __syncthreads();
  for (int pass = 7; pass >= 0; --pass) {
    const int shift = pass * 8;
    for (int b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0;
    __syncthreads();
    const unsigned long long p = prefix, m = mask;
    for (unsigned long long i = threadIdx.x; i < len; i += blockDim.x) {
      const unsigned long long key = key_of(g, i);
      if ((key & m) == p) atomicAdd(&hist[(key >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      unsigned long long below = 0;
      int d = 0;
      while (below + hist[d] < rank) below += hist[d++];
      rank -= below;
      prefix |= static_cast<unsigned long long>(d) << shift;
      mask |= 255ull << shift;
    }
    __syncthreads();
  }
  const unsigned long long kth = prefix;  // keys are unique: exactly k keys are <= kth
  for (unsigned long long i = threadIdx.x; i < len; i += blockDim.x)
    if (key_of(g, i) <= kth) g[i] = 0.0f;
}

// 2:4: in each group of 4 columns the two smallest keys (|w|, then column) are zeroed.
__global__ void two_four_kernel(float* w, unsigned long long groups) {
  const unsigned long long gi = static_cast<unsigned long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (gi >= groups) return;
  float* g = w + 4 * gi;
  unsigned long long k[4];
  for (int t = 0; t < 4; ++t) k[t] = key_of(g, t);
  for (int t = 0; t < 4; ++t) {
    int smaller = 0;
    for (int u = 0; u < 4; ++u) smaller += k[u] < k[t];
    if (smaller < 2) g[t] = 0.0f;
  }
}

}  // namespace

std::string prune_magnitude_cuda(int device, float* w, int64_t rows, int64_t cols, CudaPruneScope scope, uint64_t k) {
  std::string error;
  auto check = [&](cudaError_t rc, const char* what) {
    if (rc != cudaSuccess && error.empty()) error = std::string(what) + ": " + cudaGetErrorString(rc);
    return rc == cudaSuccess;
  };
  const unsigned long long n = static_cast<unsigned long long>(rows) * static_cast<unsigned long long>(cols);
  if (n == 0) return "";
  if (scope == CudaPruneScope::kTwoFour && cols % 4 != 0) return "2:4 pruning needs a column count divisible by 4";
  if (!check(cudaSetDevice(device), "cudaSetDevice")) return error;
  float* d = nullptr;
  if (!check(cudaMalloc(&d, n * sizeof(float)), "cudaMalloc(weight)")) return error;
  check(cudaMemcpy(d, w, n * sizeof(float), cudaMemcpyHostToDevice), "copy weight");
  switch (scope) {
    case CudaPruneScope::kRow:
      select_prune_kernel<<<static_cast<unsigned>(rows), 256>>>(d, static_cast<unsigned long long>(cols),
                                                                static_cast<unsigned long long>(cols), k);
      break;
    case CudaPruneScope::kTensor: select_prune_kernel<<<1, 1024>>>(d, n, 0, k); break;
    case CudaPruneScope::kTwoFour: {
      const unsigned long long groups = n / 4;
      two_four_kernel<<<static_cast<unsigned>((groups + 255) / 256), 256>>>(d, groups);
      break;
    }
  }
  check(cudaGetLastError(), "prune kernel launch");
  // Into a separate buffer: on any failure the caller's weight is untouched (the CPU
  // then prunes it).
  std::vector<float> out(n);
  check(cudaMemcpy(out.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost), "prune kernel");
  cudaFree(d);
  if (error.empty()) std::copy(out.begin(), out.end(), w);
  return error;
}

}  // namespace sp
