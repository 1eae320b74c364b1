// Dense linear algebra on float32 row-major matrices: the GEMMs of the forward pass, the
// Hessian update X^T X and the Cholesky factorisations GPTQ needs. OpenBLAS does the
// work; each op has a plain scalar reference (`*_ref`) that tests compare it with.
//
// Determinism: OpenBLAS's results depend on its thread count (and on how a product is
// cut: slices of rows or columns give other bits too, its kernels follow the shapes), so
// everything that writes a checkpoint runs it with one thread (workers, compress):
// `CalibrationCluster.BfloatActivationsOnAWorkerWithThreadsAreWhatOneProcessWrites`.
//
// Thread-safety: pure functions on caller-owned buffers.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"

namespace sp {

void set_blas_threads(int n);

// Y[m, n] = X[m, k] * W[n, k]^T (+ Y when accumulate). The `nn.Linear` product.
void matmul_nt(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y, bool accumulate = false);
void matmul_nt_ref(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y, bool accumulate = false);

// Y[m, n] -= A[m, k] * B[k, n], with leading dimensions (sub-blocks of larger matrices).
void matmul_sub(const float* a, int64_t lda, const float* b, int64_t ldb, float* y, int64_t ldy, int64_t m, int64_t k,
                int64_t n);

// H[c, c] += X[t, c]^T X[t, c] (upper triangle only; fp32 sums over the t rows).
void syrk_upper_accumulate(const float* x, int64_t t, int64_t c, float* h);
void syrk_upper_accumulate_ref(const float* x, int64_t t, int64_t c, float* h);

// U, upper triangular with H^-1 = U^T U, for a symmetric positive definite H [c, c]
// (LAPACK potrf/potri/potrf in float32, as the GPTQ reference; float64 when float32
// fails). FAILED_PRECONDITION when H is not positive definite even in float64 (the
// caller adds damping and retries). The result is row-major float32.
absl::StatusOr<std::vector<float>> inverse_cholesky_upper(std::span<const double> h, int64_t c);
// The same in float32 only, in place: `a` (H, full symmetric) becomes U (row-major,
// zeros below the diagonal). No extra c x c buffer: for the widest Hessians.
absl::Status inverse_cholesky_upper_inplace(std::vector<float>& a, int64_t c);
// The same by the textbook definition (Cholesky-Banachiewicz, explicit inverse), for tests.
absl::StatusOr<std::vector<float>> inverse_cholesky_upper_ref(std::span<const double> h, int64_t c);

}  // namespace sp
