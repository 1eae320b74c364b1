// What the CUDA calibration kernels allocate, in plain C++: built in every configuration
// (also without nvcc) so that `shardpress inspect` can plan GPU workers anywhere. The
// .cu files size their buffers from these same formulas.
#include <algorithm>

#include "kernels/layer_forward_cuda.h"
#include "kernels/obs_cuda.h"

namespace sp {

CudaForwardMemory layer_forward_cuda_memory(const CudaLayerShape& shape, int64_t tokens,
                                            const std::array<bool, 4>& collect) {
  const int64_t H = shape.hidden, I = shape.intermediate, qw = shape.heads * shape.head_dim,
                kw = shape.kv_heads * shape.head_dim, group = shape.kv_heads > 0 ? shape.heads / shape.kv_heads : 1;
  const int64_t width[4] = {H, qw, H, I};
  // float32 weights, biases and norms; RoPE tables; the scores of one KV group.
  size_t fixed = static_cast<size_t>(qw * H + 2 * kw * H + H * qw + 3 * I * H + 8 * (H + I + qw)) +
                 static_cast<size_t>(2 * tokens * shape.head_dim) + static_cast<size_t>(group * tokens * tokens);
  for (int i = 0; i < 4; ++i)
    if (collect[i]) fixed += static_cast<size_t>(width[i] * width[i]);  // the Hessian sums
  CudaForwardMemory m;
  m.fixed = fixed * sizeof(float) + (64u << 20);  // + cuBLAS workspace and alignment slack
  // Per token of a micro-batch: x twice (ping-pong), normed input, q, k, v, ctx, o, gate, up.
  m.per_sequence = static_cast<size_t>(3 * H + 2 * qw + 2 * kw + H + 2 * I) * static_cast<size_t>(tokens) * sizeof(float);
  return m;
}

size_t CudaObs::memory_needed(int64_t rows, int64_t cols, int slots) {
  const auto r = static_cast<size_t>(rows), c = static_cast<size_t>(cols), k = static_cast<size_t>(std::max(slots, 1));
  const size_t b = kMaxBlock;
  const size_t fixed = 8 * c * c + 6 * r * c + r * c / 2 + 8 * c + 4 * b * b;  // U, permute buffer, W0, mask0, codes,
                                                                              // packed, order
  const size_t per_slot = 5 * r * c + 4 * r * b + 8 * r + 4 * (r * c / 32 + 1);  // W, mask, errors, loss, scales
  return fixed + k * per_slot + (96u << 20);  // + solver workspace and slack
}

}  // namespace sp
