// CUDA devices visible to this process (name, memory, compute capability), for
// `--device auto` and for what a worker advertises. Plain C++ header: callers need no
// CUDA headers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sp {

struct CudaDevice {
  int index = 0;
  std::string name;
  uint64_t total_memory = 0;
  int cc_major = 0;
  int cc_minor = 0;
};

// The devices found; empty (with `*error` set when non-null) if there is no driver or
// no device.
std::vector<CudaDevice> cuda_devices(std::string* error = nullptr);

// Bytes free on the device now (0 if it cannot be asked).
uint64_t cuda_free_memory(int device);

}  // namespace sp
