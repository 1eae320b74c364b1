#include "kernels/obs_cuda.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "kernels/cuda_scope.h"
#include "kernels/nf4_device.cuh"

namespace sp {
namespace {

using cuda::Scope;

constexpr int kRows = 32;        // rows per CUDA block of the column loop (one warp)
constexpr int kMaxBlock = CudaObs::kMaxBlock;  // columns per lazy-update block held in shared memory

__global__ void add_diagonal_kernel(float* a, int64_t c, float add) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < c) a[i * c + i] += add;
}

// out[i * c + j] = h[perm[i] * c + perm[j]].
__global__ void permute_kernel(const float* h, const int64_t* perm, int64_t c, float* out) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= c * c) return;
  out[k] = h[perm[k / c] * c + perm[k % c]];
}

// Row-major [rows, cols]: to visiting order (dst[i][j] = src[i][perm[j]]) or back
// (dst[i][perm[j]] = src[i][j]).
template <typename T>
__global__ void permute_columns_kernel(const T* src, const int64_t* perm, int64_t rows, int64_t cols, bool back,
                                       T* dst) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= rows * cols) return;
  const int64_t i = k / cols, j = k % cols;
  if (back)
    dst[i * cols + perm[j]] = src[k];
  else
    dst[k] = src[i * cols + perm[j]];
}

// packed[i] = codes[2i] << 4 | codes[2i + 1] (0 past n).
__global__ void pack_kernel(const unsigned char* codes, int64_t n, unsigned char* packed) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (2 * i >= n) return;
  packed[i] = static_cast<unsigned char>(codes[2 * i] << 4 | (2 * i + 1 < n ? codes[2 * i + 1] : 0));
}

// Column-major lower -> upper: element (row i, col j) with i < j takes (j, i).
__global__ void mirror_lower_kernel(float* a, int64_t c) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= c * c) return;
  const int64_t col = k / c, row = k % c;
  if (row < col) a[col * c + row] = a[row * c + col];
}

__global__ void upper_finite_kernel(const float* a, int64_t c, int* bad) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= c * c) return;
  const int64_t col = k / c, row = k % c;
  if (row <= col && !isfinite(a[k])) *bad = 1;
}

// ublk[j * nb + t] = U(b0 + j, b0 + t) for t >= j (0 below), from the column-major
// upper factor u[col * c + row].
__global__ void extract_block_kernel(const float* u, int64_t c, int64_t b0, int nb, float* ublk) {
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= nb * nb) return;
  const int j = k / nb, t = k % nb;
  ublk[k] = t >= j ? u[(b0 + t) * c + b0 + j] : 0.0f;
}

// The OBS loop over one block's columns for kRows rows, in shared memory; the same
// operations in the same order as column_loop in ops/obs_compress.cc (built without FMA
// contraction and with IEEE division).
// Rows are those of `rows / rows_per` side-by-side loops: row R is row R % rows_per of
// loop R / rows_per, whose NF4 scales start at scale + (R / rows_per) * scale_stride.
__global__ void block_loop_kernel(float* w, int64_t rows, int64_t rows_per, int64_t cols, int64_t b0, int nb,
                                  const float* ublk, unsigned char* mask, bool two_four, const float* scale,
                                  int64_t scale_stride, int64_t bs, const int64_t* perm, unsigned char* codes,
                                  float* e, double* row_loss) {
  __shared__ float tile[kRows][kMaxBlock + 1];
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kRows;
  const int nr = static_cast<int>(min(static_cast<int64_t>(kRows), rows - r0));
  for (int k = threadIdx.x; k < nr * nb; k += blockDim.x) tile[k / nb][k % nb] = w[(r0 + k / nb) * cols + b0 + k % nb];
  __syncthreads();
  // The block is one warp: every lane visits column j together, so row j of U's block
  // is staged in shared memory once per column and read from there by all lanes.
  __shared__ float urow[kMaxBlock];
  const int rr = threadIdx.x;
  const bool active = rr < nr;
  const int64_t row = r0 + (active ? rr : 0);
  float* t_row = tile[rr];
  unsigned char* m_row = mask + row * cols;
  double loss = active ? row_loss[row] : 0.0;
  for (int j = 0; j < nb; ++j) {
    for (int t = threadIdx.x; t < nb; t += blockDim.x) urow[t] = ublk[j * nb + t];
    __syncwarp();
    if (active) {
      const int64_t col = b0 + j;
      const float d = urow[j];
      if (two_four && j % 4 == 0) {
        float g[4];
#pragma unroll
        for (int t = 0; t < 4; ++t) {
          const float dd = ublk[(j + t) * nb + j + t];
          g[t] = t_row[j + t] * t_row[j + t] / (dd * dd);
        }
        // The two lowest scores, ties to the lower index (std::stable_sort's order).
#pragma unroll
        for (int a = 0; a < 4; ++a) {
          int rank = 0;
#pragma unroll
          for (int b = 0; b < 4; ++b) rank += (g[b] < g[a] || (g[b] == g[a] && b < a)) ? 1 : 0;
          if (rank < 2) m_row[col + a] = 1;
        }
      }
      const float x = t_row[j];
      float q = x;
      const bool pruned = m_row[col] != 0;
      if (scale) {
        const int64_t flat = (row % rows_per) * cols + perm[col];
        const float sc = scale[(row / rows_per) * scale_stride + flat / bs];
        const unsigned char code = cuda::code_of((pruned ? 0.0f : x) * (1.0f / sc));
        if (codes) codes[flat] = code;
        q = pruned ? 0.0f : cuda::kCode[code] * sc;
      } else if (pruned) {
        q = 0.0f;
      }
      const float err = (x - q) / d;
      loss += static_cast<double>(x - q) * (x - q) / (static_cast<double>(d) * d) / 2;
#pragma unroll 4
      for (int t = j + 1; t < nb; ++t) t_row[t] -= err * urow[t];
      t_row[j] = q;
      e[row * nb + j] = err;
    }
    __syncwarp();  // urow is rewritten for the next column
  }
  if (active) row_loss[row] = loss;
  __syncthreads();
  for (int k = threadIdx.x; k < nr * nb; k += blockDim.x) w[(r0 + k / nb) * cols + b0 + k % nb] = tile[k / nb][k % nb];
}

unsigned grid(int64_t n, int threads = 256) { return static_cast<unsigned>((n + threads - 1) / threads); }

}  // namespace

struct CudaObs::State {
  Scope s;
  int64_t rows = 0, cols = 0;
  int slots = 1;
  int64_t* perm = nullptr;  // visiting column -> original column
  unsigned char* packed = nullptr;
  bool w0_valid = true;     // false once a final loop has reused it
  float *u = nullptr, *w0 = nullptr, *w = nullptr, *e = nullptr, *ublk = nullptr, *work = nullptr;
  unsigned char *m0 = nullptr, *m = nullptr, *codes = nullptr;
  double* loss = nullptr;
  int* info = nullptr;
  int lwork = 0;
  bool factorised = false;
};

CudaObs::CudaObs(std::unique_ptr<State> s) : s_(std::move(s)) {}
CudaObs::~CudaObs() = default;

std::unique_ptr<CudaObs> CudaObs::create(int device, int64_t rows, int64_t cols, const float* w, const uint8_t* mask,
                                         const int64_t* perm, int slots, std::string* error) {
  auto st = std::make_unique<State>();
  Scope& s = st->s;
  st->rows = rows;
  st->cols = cols;
  st->slots = std::max(slots, 1);
  const auto n = static_cast<size_t>(rows * cols), c = static_cast<size_t>(cols), k = static_cast<size_t>(st->slots);
  if (s.start(device, /*blas=*/true, /*solver=*/true)) {
    st->u = s.alloc<float>(c * c, "cudaMalloc(U)");
    st->w0 = s.alloc<float>(n, "cudaMalloc(weight)");
    st->w = s.alloc<float>(k * n, "cudaMalloc(weight)");
    st->m0 = s.alloc<unsigned char>(n, "cudaMalloc(mask)");
    st->m = s.alloc<unsigned char>(k * n, "cudaMalloc(mask)");
    st->codes = s.alloc<unsigned char>(n, "cudaMalloc(codes)");
    st->e = s.alloc<float>(k * static_cast<size_t>(rows) * kMaxBlock, "cudaMalloc(errors)");
    st->ublk = s.alloc<float>(kMaxBlock * kMaxBlock, "cudaMalloc(U block)");
    st->loss = s.alloc<double>(k * static_cast<size_t>(rows), "cudaMalloc(loss)");
    st->perm = s.alloc<int64_t>(c, "cudaMalloc(order)");
    st->packed = s.alloc<unsigned char>(n / 2 + 1, "cudaMalloc(packed)");
    st->info = s.alloc<int>(2, "cudaMalloc(info)");
  }
  if (s.ok()) {
    int l1 = 0, l2 = 0, l3 = 0;
    const int ic = static_cast<int>(cols);
    s.check(cusolverDnSpotrf_bufferSize(s.solver, CUBLAS_FILL_MODE_LOWER, ic, st->u, ic, &l1), "cusolverDnSpotrf");
    s.check(cusolverDnSpotri_bufferSize(s.solver, CUBLAS_FILL_MODE_LOWER, ic, st->u, ic, &l2), "cusolverDnSpotri");
    s.check(cusolverDnSpotrf_bufferSize(s.solver, CUBLAS_FILL_MODE_UPPER, ic, st->u, ic, &l3), "cusolverDnSpotrf");
    st->lwork = std::max({l1, l2, l3, 1});
    st->work = s.alloc<float>(static_cast<size_t>(st->lwork), "cudaMalloc(solver workspace)");
  }
  if (s.ok()) {
    // Upload into the working buffers, then gather the visiting order into W0 / mask0.
    if (perm) {
      s.check(cudaMemcpyAsync(st->perm, perm, c * sizeof(int64_t), cudaMemcpyHostToDevice, s.stream), "copy order");
    } else {
      std::vector<int64_t> identity(c);
      for (size_t j = 0; j < c; ++j) identity[j] = static_cast<int64_t>(j);
      s.check(cudaMemcpy(st->perm, identity.data(), c * sizeof(int64_t), cudaMemcpyHostToDevice), "copy order");
    }
    s.check(cudaMemcpyAsync(st->w, w, n * sizeof(float), cudaMemcpyHostToDevice, s.stream), "copy weight");
    permute_columns_kernel<float><<<grid(static_cast<int64_t>(n)), 256, 0, s.stream>>>(st->w, st->perm, rows, cols,
                                                                                       false, st->w0);
    if (mask) {
      s.check(cudaMemcpyAsync(st->m, mask, n, cudaMemcpyHostToDevice, s.stream), "copy mask");
      permute_columns_kernel<unsigned char><<<grid(static_cast<int64_t>(n)), 256, 0, s.stream>>>(
          st->m, st->perm, rows, cols, false, st->m0);
    } else {
      s.check(cudaMemsetAsync(st->m0, 0, n, s.stream), "cudaMemset(mask)");
    }
    s.launched("permute kernel");
    s.sync("upload");
  }
  if (!s.ok()) {
    *error = s.error;
    return nullptr;
  }
  return std::unique_ptr<CudaObs>(new CudaObs(std::move(st)));
}

std::string CudaObs::factorise(const float* h, float add, bool* not_pd) {
  State& st = *s_;
  Scope& s = st.s;
  *not_pd = false;
  st.factorised = false;
  const int64_t c = st.cols;
  const int ic = static_cast<int>(c);
  int info[2] = {0, 0};
  auto step = [&](const char* what) {  // devInfo after a solver call
    s.check(cudaMemcpyAsync(info, st.info, sizeof(int), cudaMemcpyDeviceToHost, s.stream), what);
    s.sync(what);
    return s.ok() && info[0] == 0;
  };
  // To the visiting order (act-order): gathered on the device from a temporary copy.
  const auto cc = static_cast<size_t>(c * c);
  float* tmp = nullptr;
  if (s.check(cudaMalloc(&tmp, cc * sizeof(float)), "cudaMalloc(Hessian)")) {
    s.check(cudaMemcpyAsync(tmp, h, cc * sizeof(float), cudaMemcpyHostToDevice, s.stream), "copy Hessian");
    permute_kernel<<<grid(c * c), 256, 0, s.stream>>>(tmp, st.perm, c, st.u);
    s.launched("permute kernel");
    s.sync("permute");
  }
  cudaFree(tmp);
  if (!s.ok()) return s.error;
  add_diagonal_kernel<<<grid(c), 256, 0, s.stream>>>(st.u, c, add);
  s.launched("damping kernel");
  s.check(cusolverDnSpotrf(s.solver, CUBLAS_FILL_MODE_LOWER, ic, st.u, ic, st.work, st.lwork, st.info),
          "cusolverDnSpotrf");
  if (!step("cusolverDnSpotrf")) {
    *not_pd = s.ok();
    return s.error;
  }
  s.check(cusolverDnSpotri(s.solver, CUBLAS_FILL_MODE_LOWER, ic, st.u, ic, st.work, st.lwork, st.info),
          "cusolverDnSpotri");
  if (!step("cusolverDnSpotri")) {
    *not_pd = s.ok();
    return s.error;
  }
  mirror_lower_kernel<<<grid(c * c), 256, 0, s.stream>>>(st.u, c);
  s.launched("mirror kernel");
  s.check(cusolverDnSpotrf(s.solver, CUBLAS_FILL_MODE_UPPER, ic, st.u, ic, st.work, st.lwork, st.info),
          "cusolverDnSpotrf");
  if (!step("cusolverDnSpotrf")) {
    *not_pd = s.ok();
    return s.error;
  }
  s.check(cudaMemsetAsync(st.info + 1, 0, sizeof(int), s.stream), "cudaMemset");
  upper_finite_kernel<<<grid(c * c), 256, 0, s.stream>>>(st.u, c, st.info + 1);
  s.launched("finite check kernel");
  s.check(cudaMemcpyAsync(info + 1, st.info + 1, sizeof(int), cudaMemcpyDeviceToHost, s.stream), "copy flag");
  s.sync("factorise");
  if (!s.ok()) return s.error;
  if (info[1]) {
    *not_pd = true;
    return "the inverse Hessian factor is not finite";
  }
  st.factorised = true;
  return "";
}

// `k` loops side by side from the uploaded weight, scales[i] for loop i (null: no
// quantization); outputs of loop 0 only when `out` asks (k == 1).
static std::string run_loops(CudaObs::State& st, const CudaObsLoop& o, int k, const float* const* scales,
                      const CudaObsOutput& out, double* const* row_losses) {
  Scope& s = st.s;
  if (!st.factorised) return "the Hessian was not factorised";
  if (o.block <= 0 || o.block > kMaxBlock) return "the GPU column loop takes blocks of 1 to 128 columns";
  const bool quantize = scales[0] != nullptr;
  if (quantize && o.nf4_blocksize <= 0) return "quantization needs a blocksize";
  if (!st.w0_valid) return "the weight was handed back by a final loop";
  if (k > st.slots || (k > 1 && o.block_mask)) return "too many loops at once";
  const int64_t rows = st.rows, cols = st.cols, all_rows = rows * k;
  const auto n = static_cast<size_t>(rows * cols);
  const size_t nblocks = (n + static_cast<size_t>(o.nf4_blocksize) - 1) / static_cast<size_t>(o.nf4_blocksize);
  float* scale = nullptr;
  if (quantize) {  // small; allocated per call so that the budget covers only the big buffers
    scale = s.alloc<float>(k * nblocks, "cudaMalloc(scales)");
    if (!s.ok()) return s.error;
    for (int i = 0; i < k; ++i)
      s.check(cudaMemcpyAsync(scale + i * nblocks, scales[i], nblocks * sizeof(float), cudaMemcpyHostToDevice, s.stream),
              "copy scales");
  }
  for (int i = 0; i < k; ++i) {
    s.check(cudaMemcpyAsync(st.w + i * n, st.w0, n * sizeof(float), cudaMemcpyDeviceToDevice, s.stream), "copy weight");
    s.check(cudaMemcpyAsync(st.m + i * n, st.m0, n, cudaMemcpyDeviceToDevice, s.stream), "copy mask");
  }
  s.check(cudaMemsetAsync(st.loss, 0, all_rows * sizeof(double), s.stream), "cudaMemset(loss)");
  std::vector<float> w1, ub;
  std::vector<uint8_t> mblk;
  const float minus = -1.0f, one = 1.0f;
  // SHARDPRESS_CUDA_PROFILE=1: device time of the column-loop kernels and of the lazy
  // GEMMs on stderr (events around each; for tuning, off by default).
  static const bool profile = std::getenv("SHARDPRESS_CUDA_PROFILE") != nullptr;
  cudaEvent_t ev[3] = {};
  float kernel_ms = 0, gemm_ms = 0;
  if (profile)
    for (auto& e : ev) cudaEventCreate(&e);
  for (int64_t b0 = 0; b0 < cols && s.ok(); b0 += o.block) {
    const int nb = static_cast<int>(std::min<int64_t>(o.block, cols - b0));
    const int64_t b1 = b0 + nb;
    extract_block_kernel<<<grid(nb * nb), 256, 0, s.stream>>>(st.u, cols, b0, nb, st.ublk);
    s.launched("U block kernel");
    if (o.block_mask) {
      w1.resize(static_cast<size_t>(rows) * nb);
      ub.resize(static_cast<size_t>(nb) * nb);
      mblk.resize(w1.size());
      s.check(cudaMemcpy2DAsync(w1.data(), nb * sizeof(float), st.w + b0, cols * sizeof(float), nb * sizeof(float),
                                rows, cudaMemcpyDeviceToHost, s.stream),
              "copy block");
      s.check(cudaMemcpyAsync(ub.data(), st.ublk, ub.size() * sizeof(float), cudaMemcpyDeviceToHost, s.stream),
              "copy U block");
      if (!s.sync("block mask")) break;
      std::vector<float> d(static_cast<size_t>(nb));
      for (int j = 0; j < nb; ++j) d[j] = ub[j * nb + j];
      const std::string err = o.block_mask(b0, nb, w1.data(), d.data(), mblk.data());
      if (!err.empty()) return err;
      s.check(cudaMemcpy2DAsync(st.m + b0, cols, mblk.data(), nb, nb, rows, cudaMemcpyHostToDevice, s.stream),
              "copy block mask");
      s.sync("block mask");  // mblk is reused by the next block
    }
    if (profile) cudaEventRecord(ev[0], s.stream);
    static_assert(kRows == 32, "the column loop kernel is one warp per block");
    block_loop_kernel<<<static_cast<unsigned>((all_rows + kRows - 1) / kRows), kRows, 0, s.stream>>>(
        st.w, all_rows, rows, cols, b0, nb, st.ublk, st.m, o.two_four, scale, static_cast<int64_t>(nblocks),
        o.nf4_blocksize, st.perm, out.packed ? st.codes : nullptr, st.e, st.loss);
    s.launched("column loop kernel");
    if (profile) cudaEventRecord(ev[1], s.stream);
    // W[:, b1:] -= E U[b0:b1, b1:]  (row-major W = column-major W^T), all loops at once.
    if (b1 < cols)
      s.check(cublasSgemm(s.blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(cols - b1), static_cast<int>(all_rows), nb,
                          &minus, st.u + b1 * cols + b0, static_cast<int>(cols), st.e, nb, &one, st.w + b1,
                          static_cast<int>(cols)),
              "cublasSgemm(lazy update)");
    if (profile) {
      float a = 0, b = 0;
      cudaEventRecord(ev[2], s.stream);
      cudaEventSynchronize(ev[2]);
      cudaEventElapsedTime(&a, ev[0], ev[1]);
      cudaEventElapsedTime(&b, ev[1], ev[2]);
      kernel_ms += a;
      gemm_ms += b;
    }
  }
  if (profile) {
    std::fprintf(stderr, "cuda obs %d loop(s) %lldx%lld: column kernels %.1f ms, lazy GEMMs %.1f ms\n", k,
                 static_cast<long long>(rows), static_cast<long long>(cols), kernel_ms, gemm_ms);
    for (auto& e : ev) cudaEventDestroy(e);
  }
  if (out.w) {  // back to the original column order, in W0 (the last loop: it is free now)
    permute_columns_kernel<float><<<grid(static_cast<int64_t>(n)), 256, 0, s.stream>>>(st.w, st.perm, rows, cols, true,
                                                                                      st.w0);
    s.launched("permute kernel");
    st.w0_valid = false;
    s.check(cudaMemcpyAsync(out.w, st.w0, n * sizeof(float), cudaMemcpyDeviceToHost, s.stream), "copy weight");
  }
  if (out.mask) s.check(cudaMemcpyAsync(out.mask, st.m, n, cudaMemcpyDeviceToHost, s.stream), "copy mask");
  if (out.packed) {
    pack_kernel<<<grid(static_cast<int64_t>((n + 1) / 2)), 256, 0, s.stream>>>(st.codes, static_cast<int64_t>(n),
                                                                               st.packed);
    s.launched("pack kernel");
    s.check(cudaMemcpyAsync(out.packed, st.packed, (n + 1) / 2, cudaMemcpyDeviceToHost, s.stream), "copy codes");
  }
  for (int i = 0; i < k; ++i)
    if (row_losses[i])
      s.check(cudaMemcpyAsync(row_losses[i], st.loss + i * rows, rows * sizeof(double), cudaMemcpyDeviceToHost,
                              s.stream),
              "copy loss");
  s.sync("column loop");
  if (scale) {  // give the small buffer back
    cudaFree(scale);
    s.buffers.erase(std::find(s.buffers.begin(), s.buffers.end(), static_cast<void*>(scale)));
  }
  return s.error;
}

std::string CudaObs::loop(const CudaObsLoop& o, const CudaObsOutput& out) {
  const float* scales[1] = {o.scale};
  double* losses[1] = {out.row_loss};
  return run_loops(*s_, o, 1, scales, out, losses);
}

std::string CudaObs::losses(const CudaObsLoop& o, int count, const float* const* scales, double* const* row_losses) {
  const int group = o.block_mask ? 1 : s_->slots;
  for (int i = 0; i < count; i += group) {
    const std::string error = run_loops(*s_, o, std::min(group, count - i), scales + i, CudaObsOutput{}, row_losses + i);
    if (!error.empty()) return error;
  }
  return "";
}

}  // namespace sp
