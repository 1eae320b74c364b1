// Magnitude pruning on a CUDA device, the same selection as ops/prune.cc: in each group
// (a row, the whole tensor, or 4 consecutive columns for 2:4) the k entries with the
// smallest |w| are zeroed, ties broken by the lower index — i.e. the k smallest keys
// (|w| bits, index), found by an exact 8-pass radix select over 64-bit keys (one CUDA
// block per row; one block for the whole tensor, correct but not fast at 100M+ entries).
// Inputs must be finite (the caller checks, as the CPU path does).
//
// Plain C++ header; errors come back as text (empty: ok).
#pragma once

#include <cstdint>
#include <string>

namespace sp {

enum class CudaPruneScope : uint8_t { kTensor, kRow, kTwoFour };

// Prunes the row-major [rows, cols] float32 weight `w` (host memory) in place; `k` is the
// count per group (per row, or for the tensor; ignored for 2:4).
std::string prune_magnitude_cuda(int device, float* w, int64_t rows, int64_t cols, CudaPruneScope scope, uint64_t k);

}  // namespace sp
