#include "kernels/layer_forward_cuda.h"

#include <algorithm>
#include <cstring>

#include "kernels/cuda_scope.h"

namespace sp {
namespace {

using cuda::Scope;

// out[r, :] = weight * x[r, :] / sqrt(mean(x[r, :]^2) + eps): one block per row, the sum
// of squares in double as the CPU (ops/decoder_layer.cc rms_norm). In place allowed.
__global__ void rms_norm_kernel(const float* x, int64_t width, const float* weight, double eps, float* out) {
  __shared__ double part[256];
  const float* v = x + blockIdx.x * width;
  float* o = out + blockIdx.x * width;
  double ss = 0;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) ss += static_cast<double>(v[i]) * v[i];
  part[threadIdx.x] = ss;
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
    __syncthreads();
  }
  const float inv = static_cast<float>(1.0 / sqrt(part[0] / static_cast<double>(width) + eps));
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) o[i] = weight[i] * (v[i] * inv);
}

__global__ void bias_kernel(float* y, int64_t n, int64_t width, const float* bias) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] += bias[i % width];
}

__global__ void add_kernel(float* x, const float* o, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] += o[i];
}

__global__ void silu_mul_kernel(float* g, const float* u, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

// rotate_half RoPE on x[tokens, heads, d]; the position is the token's index in its
// sequence (tokens of one sequence are consecutive, T per sequence).
__global__ void rope_kernel(float* x, int64_t tokens, int64_t T, int64_t heads, int64_t d, const float* cos,
                            const float* sin) {
  const int64_t half = d / 2;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= tokens * heads * half) return;
  const int64_t e = i % half, th = i / half, t = th / heads;
  const float* c = cos + (t % T) * d;
  const float* s = sin + (t % T) * d;
  float* v = x + th * d;
  const float a = v[e], b = v[e + half];
  v[e] = a * c[e] - b * s[e];
  v[e + half] = b * c[e + half] + a * s[e + half];
}

// Scaled, masked softmax of each row of p[rows, T] (row r is query r % T), as the CPU:
// scale, max, exp, double sum, multiply by the float reciprocal; masked entries 0.
__global__ void softmax_kernel(float* p, int64_t T, int64_t window, float scale) {
  __shared__ float red[256];
  __shared__ double dred[256];
  const int64_t r = blockIdx.x, t = r % T;
  float* row = p + r * T;
  const int64_t first = window > 0 ? max(static_cast<int64_t>(0), t - window + 1) : 0;
  float mx = -INFINITY;
  for (int64_t s = first + threadIdx.x; s <= t; s += blockDim.x) {
    row[s] *= scale;
    mx = fmaxf(mx, row[s]);
  }
  red[threadIdx.x] = mx;
  __syncthreads();
  for (unsigned k = blockDim.x / 2; k > 0; k >>= 1) {
    if (threadIdx.x < k) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + k]);
    __syncthreads();
  }
  mx = red[0];
  double sum = 0;
  for (int64_t s = first + threadIdx.x; s <= t; s += blockDim.x) {
    row[s] = expf(row[s] - mx);
    sum += row[s];
  }
  dred[threadIdx.x] = sum;
  __syncthreads();
  for (unsigned k = blockDim.x / 2; k > 0; k >>= 1) {
    if (threadIdx.x < k) dred[threadIdx.x] += dred[threadIdx.x + k];
    __syncthreads();
  }
  const float inv = static_cast<float>(1.0 / dred[0]);
  for (int64_t s = threadIdx.x; s < T; s += blockDim.x) row[s] = (s >= first && s <= t) ? row[s] * inv : 0.0f;
}

unsigned grid(int64_t n, int threads = 256) { return static_cast<unsigned>((n + threads - 1) / threads); }

// The widths of one layer (the buffers they size are counted in device_memory.cc).
struct Sizes {
  int64_t H, I, qw, kw, hd, group;
  explicit Sizes(const CudaLayerShape& s)
      : H(s.hidden), I(s.intermediate), qw(s.heads * s.head_dim), kw(s.kv_heads * s.head_dim), hd(s.head_dim),
        group(s.kv_heads > 0 ? s.heads / s.kv_heads : 1) {}
  int64_t width(int input) const { return input == 1 ? qw : input == 3 ? I : H; }
};

// The device side of the weights: a float32 copy of each tensor (null stays null).
struct DeviceWeights {
  const float *q, *k, *v, *o, *gate, *up, *down;
  const float *q_bias, *k_bias, *v_bias, *o_bias, *gate_bias, *up_bias, *down_bias;
  const float *input_norm, *post_attention_norm, *q_norm, *k_norm, *post_feedforward_norm;
};

const float* upload(Scope& s, const float* host, int64_t n, const char* what) {
  if (!host) return nullptr;
  float* d = s.alloc<float>(static_cast<size_t>(n), what);
  if (d) s.check(cudaMemcpyAsync(d, host, n * sizeof(float), cudaMemcpyHostToDevice, s.stream), what);
  return d;
}

// Y[M, n] = X[M, k] W[n, k]^T (row-major), + bias.
void linear(Scope& s, const float* x, int64_t M, int64_t k, const float* w, int64_t n, const float* bias, float* y) {
  const float one = 1.0f, zero = 0.0f;
  s.check(cublasSgemm(s.blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(M), static_cast<int>(k),
                      &one, w, static_cast<int>(k), x, static_cast<int>(k), &zero, y, static_cast<int>(n)),
          "cublasSgemm(linear)");
  if (bias) {
    bias_kernel<<<grid(M * n), 256, 0, s.stream>>>(y, M * n, n, bias);
    s.launched("bias kernel");
  }
}

void rms_norm(Scope& s, const float* x, int64_t rows, int64_t width, const float* weight, double eps, float* out) {
  if (rows == 0) return;
  rms_norm_kernel<<<static_cast<unsigned>(rows), 256, 0, s.stream>>>(x, width, weight, eps, out);
  s.launched("rms_norm kernel");
}

// H (column-major lower == row-major upper) += X^T X for X[M, c] row-major.
void syrk(Scope& s, float* h, const float* x, int64_t M, int64_t c) {
  if (!h) return;
  const float one = 1.0f;
  s.check(cublasSsyrk(s.blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, static_cast<int>(c), static_cast<int>(M), &one, x,
                      static_cast<int>(c), &one, h, static_cast<int>(c)),
          "cublasSsyrk(hessian)");
}

struct Buffers {
  float *a, *q, *k, *v, *ctx, *o, *g, *u, *scores;
};

// One micro-batch of `m` sequences, in place on x[m * T, H].
void forward_batch(Scope& s, const CudaLayerShape& shape, const Sizes& z, const DeviceWeights& w, const Buffers& b,
                   const float* cos, const float* sin, float* const* hess, float* x, int64_t m, int64_t T) {
  const int64_t M = m * T;
  const float* attn_in = x;
  if (shape.input_norms) {
    rms_norm(s, x, M, z.H, w.input_norm, shape.eps, b.a);
    attn_in = b.a;
  }
  syrk(s, hess[0], attn_in, M, z.H);
  linear(s, attn_in, M, z.H, w.q, z.qw, w.q_bias, b.q);
  linear(s, attn_in, M, z.H, w.k, z.kw, w.k_bias, b.k);
  linear(s, attn_in, M, z.H, w.v, z.kw, w.v_bias, b.v);
  if (shape.qk_norm) {
    rms_norm(s, b.q, M * shape.heads, z.hd, w.q_norm, shape.eps, b.q);
    rms_norm(s, b.k, M * shape.kv_heads, z.hd, w.k_norm, shape.eps, b.k);
  }
  if (shape.rope) {
    rope_kernel<<<grid(M * shape.heads * z.hd / 2), 256, 0, s.stream>>>(b.q, M, T, shape.heads, z.hd, cos, sin);
    rope_kernel<<<grid(M * shape.kv_heads * z.hd / 2), 256, 0, s.stream>>>(b.k, M, T, shape.kv_heads, z.hd, cos, sin);
    s.launched("rope kernel");
  }
  const float one = 1.0f, zero = 0.0f;
  const float scale = 1.0f / sqrtf(static_cast<float>(z.hd));
  const int iT = static_cast<int>(T), ihd = static_cast<int>(z.hd);
  for (int64_t q = 0; q < m && s.ok(); ++q)
    for (int64_t g = 0; g < shape.kv_heads && s.ok(); ++g) {
      const float* kq = b.k + q * T * z.kw + g * z.hd;
      const float* vq = b.v + q * T * z.kw + g * z.hd;
      const float* qq = b.q + q * T * z.qw + g * z.group * z.hd;
      float* cq = b.ctx + q * T * z.qw + g * z.group * z.hd;
      // scores[h][t][s] = Q_h[t] . K_g[s] for the group's heads.
      s.check(cublasSgemmStridedBatched(s.blas, CUBLAS_OP_T, CUBLAS_OP_N, iT, iT, ihd, &one, kq, static_cast<int>(z.kw),
                                        0, qq, static_cast<int>(z.qw), z.hd, &zero, b.scores, iT, T * T,
                                        static_cast<int>(z.group)),
              "cublasSgemmStridedBatched(scores)");
      softmax_kernel<<<static_cast<unsigned>(z.group * T), 256, 0, s.stream>>>(b.scores, T, shape.window, scale);
      s.launched("softmax kernel");
      // ctx_h[t] = sum_s P_h[t][s] V_g[s].
      s.check(cublasSgemmStridedBatched(s.blas, CUBLAS_OP_N, CUBLAS_OP_N, ihd, iT, iT, &one, vq, static_cast<int>(z.kw),
                                        0, b.scores, iT, T * T, &zero, cq, static_cast<int>(z.qw), z.hd,
                                        static_cast<int>(z.group)),
              "cublasSgemmStridedBatched(context)");
    }
  syrk(s, hess[1], b.ctx, M, z.qw);
  linear(s, b.ctx, M, z.qw, w.o, z.H, w.o_bias, b.o);
  if (shape.qk_norm) rms_norm(s, b.o, M, z.H, w.post_attention_norm, shape.eps, b.o);
  add_kernel<<<grid(M * z.H), 256, 0, s.stream>>>(x, b.o, M * z.H);
  const float* mlp_in = x;
  if (shape.input_norms) {
    rms_norm(s, x, M, z.H, w.post_attention_norm, shape.eps, b.a);
    mlp_in = b.a;
  }
  syrk(s, hess[2], mlp_in, M, z.H);
  linear(s, mlp_in, M, z.H, w.gate, z.I, w.gate_bias, b.g);
  linear(s, mlp_in, M, z.H, w.up, z.I, w.up_bias, b.u);
  silu_mul_kernel<<<grid(M * z.I), 256, 0, s.stream>>>(b.g, b.u, M * z.I);
  syrk(s, hess[3], b.g, M, z.I);
  linear(s, b.g, M, z.I, w.down, z.H, w.down_bias, b.o);
  if (shape.qk_norm) rms_norm(s, b.o, M, z.H, w.post_feedforward_norm, shape.eps, b.o);
  add_kernel<<<grid(M * z.H), 256, 0, s.stream>>>(x, b.o, M * z.H);
  s.launched("forward kernels");
}

}  // namespace

std::string layer_forward_cuda(int device, const CudaLayerShape& shape, const CudaLayerWeights& hw,
                               const CudaForwardRequest& req) {
  const Sizes z(shape);
  const int64_t T = req.tokens, S = req.sequences;
  if (shape.kv_heads <= 0 || shape.heads % shape.kv_heads != 0 || shape.head_dim % 2 != 0)
    return "attention heads do not divide into key/value groups";
  if (S == 0 || T == 0) return "";
  std::array<bool, 4> collect{};
  for (int i = 0; i < 4; ++i) collect[i] = req.hessian_sums[i] != nullptr;
  Scope s;
  if (!s.start(device, /*blas=*/true)) return s.error;
  const CudaForwardMemory need = layer_forward_cuda_memory(shape, T, collect);
  const size_t budget = req.memory_budget ? req.memory_budget : cuda::free_memory() / 10 * 9;
  if (need.fixed + need.per_sequence > budget)
    return "one layer with one sequence of " + std::to_string(T) + " tokens needs " +
           std::to_string((need.fixed + need.per_sequence) >> 20) + " MiB of device memory, the budget is " +
           std::to_string(budget >> 20) + " MiB";
  const int64_t m = std::min<int64_t>(S, static_cast<int64_t>((budget - need.fixed) / need.per_sequence));

  DeviceWeights w{};
  w.q = upload(s, hw.q, z.qw * z.H, "cudaMalloc(q_proj)");
  w.k = upload(s, hw.k, z.kw * z.H, "cudaMalloc(k_proj)");
  w.v = upload(s, hw.v, z.kw * z.H, "cudaMalloc(v_proj)");
  w.o = upload(s, hw.o, z.H * z.qw, "cudaMalloc(o_proj)");
  w.gate = upload(s, hw.gate, z.I * z.H, "cudaMalloc(gate_proj)");
  w.up = upload(s, hw.up, z.I * z.H, "cudaMalloc(up_proj)");
  w.down = upload(s, hw.down, z.H * z.I, "cudaMalloc(down_proj)");
  w.q_bias = upload(s, hw.q_bias, z.qw, "cudaMalloc(bias)");
  w.k_bias = upload(s, hw.k_bias, z.kw, "cudaMalloc(bias)");
  w.v_bias = upload(s, hw.v_bias, z.kw, "cudaMalloc(bias)");
  w.o_bias = upload(s, hw.o_bias, z.H, "cudaMalloc(bias)");
  w.gate_bias = upload(s, hw.gate_bias, z.I, "cudaMalloc(bias)");
  w.up_bias = upload(s, hw.up_bias, z.I, "cudaMalloc(bias)");
  w.down_bias = upload(s, hw.down_bias, z.H, "cudaMalloc(bias)");
  w.input_norm = upload(s, hw.input_norm, z.H, "cudaMalloc(norm)");
  w.post_attention_norm = upload(s, hw.post_attention_norm, z.H, "cudaMalloc(norm)");
  w.q_norm = upload(s, hw.q_norm, z.hd, "cudaMalloc(norm)");
  w.k_norm = upload(s, hw.k_norm, z.hd, "cudaMalloc(norm)");
  w.post_feedforward_norm = upload(s, hw.post_feedforward_norm, z.H, "cudaMalloc(norm)");
  if (!w.q || !w.k || !w.v || !w.o || !w.gate || !w.up || !w.down || !w.post_attention_norm ||
      (shape.input_norms && !w.input_norm) || (shape.qk_norm && (!w.q_norm || !w.k_norm || !w.post_feedforward_norm)))
    return s.ok() ? "a weight the layer needs is missing" : s.error;
  const float* cos = shape.rope ? upload(s, req.rope_cos, T * z.hd, "cudaMalloc(rope)") : nullptr;
  const float* sin = shape.rope ? upload(s, req.rope_sin, T * z.hd, "cudaMalloc(rope)") : nullptr;
  if (shape.rope && (!cos || !sin)) return s.ok() ? "RoPE tables are missing" : s.error;
  float* hess[4] = {};
  for (int i = 0; i < 4; ++i)
    if (collect[i]) {
      const auto c = static_cast<size_t>(z.width(i));
      hess[i] = s.alloc<float>(c * c, "cudaMalloc(hessian)");
      if (hess[i]) s.check(cudaMemsetAsync(hess[i], 0, c * c * sizeof(float), s.stream), "cudaMemset(hessian)");
    }
  const int64_t M = m * T;
  Buffers b{};
  float* x[2] = {s.alloc<float>(M * z.H, "cudaMalloc(activations)"), s.alloc<float>(M * z.H, "cudaMalloc(activations)")};
  b.a = s.alloc<float>(M * z.H, "cudaMalloc(normed)");
  b.q = s.alloc<float>(M * z.qw, "cudaMalloc(q)");
  b.k = s.alloc<float>(M * z.kw, "cudaMalloc(k)");
  b.v = s.alloc<float>(M * z.kw, "cudaMalloc(v)");
  b.ctx = s.alloc<float>(M * z.qw, "cudaMalloc(context)");
  b.o = s.alloc<float>(M * z.H, "cudaMalloc(o)");
  b.g = s.alloc<float>(M * z.I, "cudaMalloc(gate)");
  b.u = s.alloc<float>(M * z.I, "cudaMalloc(up)");
  b.scores = s.alloc<float>(z.group * T * T, "cudaMalloc(scores)");
  float* pinned[2] = {s.alloc_pinned<float>(M * z.H, "cudaMallocHost(staging)"),
                      s.alloc_pinned<float>(M * z.H, "cudaMallocHost(staging)")};
  if (!s.ok()) return s.error;

  // Copies in on `in`, compute on s.stream, copies out on `out`, events between them.
  cudaStream_t in = nullptr, out = nullptr;
  cudaEvent_t loaded[2] = {}, computed[2] = {}, saved[2] = {};
  s.check(cudaStreamCreate(&in), "cudaStreamCreate");
  s.check(cudaStreamCreate(&out), "cudaStreamCreate");
  for (int i = 0; i < 2; ++i) {
    s.check(cudaEventCreateWithFlags(&loaded[i], cudaEventDisableTiming), "cudaEventCreate");
    s.check(cudaEventCreateWithFlags(&computed[i], cudaEventDisableTiming), "cudaEventCreate");
    s.check(cudaEventCreateWithFlags(&saved[i], cudaEventDisableTiming), "cudaEventCreate");
  }
  const size_t seq_floats = static_cast<size_t>(T * z.H);
  const int64_t batches = (S + m - 1) / m;
  int64_t pending[2] = {-1, -1};  // the batch whose output waits in each slot's pinned buffer
  auto drain = [&](int slot) {
    if (pending[slot] < 0) return;
    s.check(cudaEventSynchronize(saved[slot]), "copy out");
    if (req.out && s.ok()) {
      const int64_t first = pending[slot] * m, count = std::min(m, S - first);
      std::memcpy(req.out + first * seq_floats, pinned[slot], count * seq_floats * sizeof(float));
      if (req.out_written) *req.out_written = true;
    }
    pending[slot] = -1;
  };
  for (int64_t bi = 0; bi < batches && s.ok(); ++bi) {
    const int slot = static_cast<int>(bi % 2);
    drain(slot);  // the batch two back has left this slot
    const int64_t first = bi * m, count = std::min(m, S - first);
    std::memcpy(pinned[slot], req.acts + first * seq_floats, count * seq_floats * sizeof(float));
    s.check(cudaMemcpyAsync(x[slot], pinned[slot], count * seq_floats * sizeof(float), cudaMemcpyHostToDevice, in),
            "copy in");
    s.check(cudaEventRecord(loaded[slot], in), "cudaEventRecord");
    s.check(cudaStreamWaitEvent(s.stream, loaded[slot], 0), "cudaStreamWaitEvent");
    forward_batch(s, shape, z, w, b, cos, sin, hess, x[slot], count, T);
    s.check(cudaEventRecord(computed[slot], s.stream), "cudaEventRecord");
    if (req.out) {
      s.check(cudaStreamWaitEvent(out, computed[slot], 0), "cudaStreamWaitEvent");
      s.check(cudaMemcpyAsync(pinned[slot], x[slot], count * seq_floats * sizeof(float), cudaMemcpyDeviceToHost, out),
              "copy out");
    }
    s.check(cudaEventRecord(saved[slot], req.out ? out : s.stream), "cudaEventRecord");
    pending[slot] = bi;
  }
  drain(static_cast<int>(batches % 2));
  drain(static_cast<int>((batches + 1) % 2));
  s.sync("layer forward");
  for (int i = 0; i < 4 && s.ok(); ++i)
    if (hess[i]) {
      const auto c = static_cast<size_t>(z.width(i));
      s.check(cudaMemcpy(req.hessian_sums[i], hess[i], c * c * sizeof(float), cudaMemcpyDeviceToHost),
              "copy Hessian");
    }
  for (int i = 0; i < 2; ++i) {
    cudaEventDestroy(loaded[i]);
    cudaEventDestroy(computed[i]);
    cudaEventDestroy(saved[i]);
  }
  cudaStreamSynchronize(in);
  cudaStreamSynchronize(out);
  cudaStreamDestroy(in);
  cudaStreamDestroy(out);
  return s.error;
}

}  // namespace sp
