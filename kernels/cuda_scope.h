// Shared by the .cu files of kernels/ (needs CUDA headers): a Scope that owns the device
// buffers, stream and library handles of one call and keeps the first failing call's
// message ("cudaMalloc(hessian): out of memory"), so every entry point can return the
// device's own words to the worker instead of aborting.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <string>
#include <vector>

namespace sp::cuda {

inline const char* cublas_message(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "cuBLAS not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "cuBLAS allocation failed (out of memory)";
    case CUBLAS_STATUS_INVALID_VALUE: return "cuBLAS invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "cuBLAS architecture mismatch";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "cuBLAS execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "cuBLAS internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "cuBLAS operation not supported";
    default: return "cuBLAS error";
  }
}

struct Scope {
  std::string error;
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  cusolverDnHandle_t solver = nullptr;
  std::vector<void*> buffers;
  std::vector<void*> pinned;

  bool ok() const { return error.empty(); }
  bool check(cudaError_t rc, const char* what) {
    if (rc != cudaSuccess && error.empty()) error = std::string(what) + ": " + cudaGetErrorString(rc);
    return rc == cudaSuccess;
  }
  bool check(cublasStatus_t rc, const char* what) {
    if (rc != CUBLAS_STATUS_SUCCESS && error.empty()) error = std::string(what) + ": " + cublas_message(rc);
    return rc == CUBLAS_STATUS_SUCCESS;
  }
  bool check(cusolverStatus_t rc, const char* what) {
    if (rc != CUSOLVER_STATUS_SUCCESS && error.empty())
      error = std::string(what) + ": cuSOLVER status " + std::to_string(static_cast<int>(rc));
    return rc == CUSOLVER_STATUS_SUCCESS;
  }
  template <typename T>
  T* alloc(size_t count, const char* what) {
    void* p = nullptr;
    if (!error.empty() || !check(cudaMalloc(&p, count ? count * sizeof(T) : 1), what)) return nullptr;
    buffers.push_back(p);
    return static_cast<T*>(p);
  }
  template <typename T>
  T* alloc_pinned(size_t count, const char* what) {
    void* p = nullptr;
    if (!error.empty() || !check(cudaMallocHost(&p, count ? count * sizeof(T) : 1), what)) return nullptr;
    pinned.push_back(p);
    return static_cast<T*>(p);
  }
  // Device, stream and (when asked) cuBLAS / cuSOLVER bound to the stream. cuBLAS runs
  // in its default math mode: plain fp32, no TF32 (as on Pascal).
  bool start(int dev, bool with_blas = false, bool with_solver = false) {
    device = dev;
    if (!check(cudaSetDevice(dev), "cudaSetDevice") || !check(cudaStreamCreate(&stream), "cudaStreamCreate"))
      return false;
    if (with_blas) {
      if (!check(cublasCreate(&blas), "cublasCreate")) return false;
      check(cublasSetStream(blas, stream), "cublasSetStream");
      check(cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    }
    if (with_solver) {
      if (!check(cusolverDnCreate(&solver), "cusolverDnCreate")) return false;
      check(cusolverDnSetStream(solver, stream), "cusolverDnSetStream");
    }
    return ok();
  }
  bool launched(const char* what) { return check(cudaGetLastError(), what); }
  bool sync(const char* what) { return check(cudaStreamSynchronize(stream), what); }
  ~Scope() {
    if (stream) cudaStreamSynchronize(stream);
    for (void* p : buffers) cudaFree(p);
    for (void* p : pinned) cudaFreeHost(p);
    if (solver) cusolverDnDestroy(solver);
    if (blas) cublasDestroy(blas);
    if (stream) cudaStreamDestroy(stream);
  }
};

// Free device memory now (bytes), for budgets.
inline size_t free_memory() {
  size_t f = 0, t = 0;
  return cudaMemGetInfo(&f, &t) == cudaSuccess ? f : 0;
}

}  // namespace sp::cuda
