// The forward pass of one decoder layer on a CUDA device, for calibration: the same
// arithmetic as ops/decoder_layer.cc (Llama / Qwen2 / EXAONE 4: RMSNorm placement,
// q/k/v biases, QK-norm, RoPE or NoPE, causal and sliding-window GQA attention, SwiGLU)
// with fp32 cuBLAS GEMMs (no TF32) and fp32 kernels, and the Hessian sums X^T X of the
// four distinct linear inputs accumulated on the device by SYRK.
//
// Sequences go through in micro-batches sized to the memory budget; the host
// activations are staged through two pinned buffers so that the copies of one
// micro-batch overlap the compute of the other (two streams).
//
// Plain C++ header (no CUDA headers). Errors come back as text naming the failing call
// and the device's message; on error nothing has been written to `hessian_sums`, and
// `out_written` says whether any of `out` was (the budget is checked and every buffer
// allocated before the first write).
// Thread-safety: each call owns its device buffers and streams.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace sp {

struct CudaLayerShape {
  int64_t hidden = 0, intermediate = 0, heads = 0, kv_heads = 0, head_dim = 0;
  bool input_norms = true;   // Llama/Qwen2: RMSNorm before attention and MLP
  bool qk_norm = false;      // EXAONE 4: RMSNorm per head on q and k, and post-norms on outputs
  bool rope = true;          // false on EXAONE's global (NoPE) layers
  int64_t window = 0;        // sliding window (0: full causal)
  double eps = 1e-6;
};

// Host float32 tensors in their stored shapes ([out, in] for projections); biases and
// norms may be null where the architecture has none.
struct CudaLayerWeights {
  const float *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr, *gate = nullptr, *up = nullptr,
              *down = nullptr;
  const float *q_bias = nullptr, *k_bias = nullptr, *v_bias = nullptr, *o_bias = nullptr, *gate_bias = nullptr,
              *up_bias = nullptr, *down_bias = nullptr;
  const float *input_norm = nullptr, *post_attention_norm = nullptr, *q_norm = nullptr, *k_norm = nullptr,
              *post_feedforward_norm = nullptr;
};

struct CudaForwardRequest {
  const float* acts = nullptr;  // [sequences, tokens, hidden]
  int64_t sequences = 0, tokens = 0;
  const float* rope_cos = nullptr;  // [tokens, head_dim] (when shape.rope)
  const float* rope_sin = nullptr;
  // Per linear input (qkv, o, gate_up, down): where to write the sum over all tokens of
  // x^T x, a [width, width] buffer whose row-major upper triangle receives the sums (the
  // lower triangle is overwritten with unspecified values); null: not collected.
  std::array<float*, 4> hessian_sums{};
  float* out = nullptr;  // [sequences, tokens, hidden] (may equal acts); null: discarded
  bool* out_written = nullptr;  // set when any of `out` was written (also on error)
  size_t memory_budget = 0;  // bytes of device memory this call may use (0: what is free)
};

// What a forward with these settings needs on the device: the fixed part (weights,
// Hessians) and the part per sequence of a micro-batch.
struct CudaForwardMemory {
  size_t fixed = 0, per_sequence = 0;
};
CudaForwardMemory layer_forward_cuda_memory(const CudaLayerShape& shape, int64_t tokens,
                                            const std::array<bool, 4>& collect);

// Runs the request; returns "" or the error.
std::string layer_forward_cuda(int device, const CudaLayerShape& shape, const CudaLayerWeights& w,
                               const CudaForwardRequest& req);

}  // namespace sp
