#include "kernels/device_info.h"

#include <cuda_runtime.h>

namespace sp {

std::vector<CudaDevice> cuda_devices(std::string* error) {
  std::vector<CudaDevice> out;
  int count = 0;
  const cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess) {
    if (error) *error = cudaGetErrorString(rc);
    return out;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    out.push_back({i, p.name, static_cast<uint64_t>(p.totalGlobalMem), p.major, p.minor});
  }
  return out;
}

uint64_t cuda_free_memory(int device) {
  size_t free = 0, total = 0;
  if (cudaSetDevice(device) != cudaSuccess || cudaMemGetInfo(&free, &total) != cudaSuccess) return 0;
  return free;
}

}  // namespace sp
