// GPTQ / SparseGPT on a CUDA device: the factorisation U = chol((H + damping)^-1) by
// cuSOLVER (potrf, potri, potrf in fp32, as ops/linalg does with LAPACK) and the OBS
// column loop of ops/obs_compress.cc — 128-column blocks held in shared memory, one
// thread per row visiting the block's columns in order (NF4 codes from the static block
// scales with the IEEE reciprocal, 2:4 chosen lazily per group of 4), then the lazy
// update of the columns to the right as one cuBLAS GEMM.
//
// Within a block the arithmetic is the CPU's, operation for operation; the factorisation
// and the GEMM sum in another order, so results match the CPU within float rounding
// (tests/kernels/obs_kernel_test.cc states the tolerances), and are deterministic on a
// given device kind.
//
// Plain C++ header (no CUDA headers). Errors come back as text with the device's message.
// Thread-safety: one object per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace sp {

struct CudaObsLoop {
  int64_t block = 128;            // columns per lazy-update block (at most 128)
  const float* scale = nullptr;   // NF4 scale per block of the original flattened weight; null: no quantization
  int64_t nf4_blocksize = 64;
  bool two_four = false;          // SparseGPT 2:4, chosen on the device
  // SparseGPT's per-row / per-tensor mask of one block, chosen on the host from the
  // block's updated weights w1[rows, nb] and U's diagonal d[nb]: fills mask[rows, nb]
  // (1 = prune); returns "" or an error. Empty function: no adaptive mask.
  std::function<std::string(int64_t b0, int64_t nb, const float* w1, const float* d, uint8_t* mask)> block_mask;
};

// Host outputs of a loop; null: not wanted. A loop that returns `w` must be the last
// (the weight is taken back to the original order in the buffer the loops start from).
struct CudaObsOutput {
  float* w = nullptr;          // [rows, cols] final values, original column order
  uint8_t* mask = nullptr;     // [rows, cols] pruned entries, visiting order
  uint8_t* packed = nullptr;   // [(rows * cols + 1) / 2] NF4 codes, original order, element 2i in the
                               // high nibble; an odd count's spare nibble is 0 (the caller sets it)
  double* row_loss = nullptr;  // [rows]
};

class CudaObs {
 public:
  static constexpr int kMaxBlock = 128;  // the widest lazy-update block the column loop holds

  // Device memory the object needs for a [rows, cols] weight with room for `slots`
  // loops at once (U and a second c x c buffer while act-order permutes H, the weight,
  // mask and codes, and per slot a working weight, mask and errors); the worker compares
  // it with its budget before creating one.
  static size_t memory_needed(int64_t rows, int64_t cols, int slots);
  // Uploads the weight and its fixed mask (null: none), row-major in the original column
  // order, and takes them to the visiting order perm (perm[j] = original column of the
  // j-th visited one) on the device.
  static std::unique_ptr<CudaObs> create(int device, int64_t rows, int64_t cols, const float* w, const uint8_t* mask,
                                         const int64_t* perm, int slots, std::string* error);
  ~CudaObs();

  // U from H (full symmetric [cols, cols], original order) taken to the visiting order
  // given at create() on the device, + `add` on the diagonal. Returns "" or an error;
  // *not_pd is set when H is not positive definite in fp32 (the caller then takes more
  // damping or float64 on the CPU).
  std::string factorise(const float* h, float add, bool* not_pd);
  // One column loop from the uploaded weight (any number of loops may follow one
  // factorisation).
  std::string loop(const CudaObsLoop& settings, const CudaObsOutput& out);
  // The row losses of `count` loops that differ only in their NF4 scales (GPTQ's scale
  // search): run side by side, `slots` at a time, as one set of rows (the column-loop
  // kernel and the lazy GEMM then have `slots` times the rows to keep the device busy).
  // Not with a host block mask (loops one by one then).
  std::string losses(const CudaObsLoop& settings, int count, const float* const* scales, double* const* row_losses);

  struct State;  // the device buffers (opaque)

 private:
  explicit CudaObs(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

}  // namespace sp
