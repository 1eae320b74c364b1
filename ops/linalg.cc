#include "ops/linalg.h"

#include <cblas.h>

#include <cmath>

#include "fmt/format.h"

extern "C" {
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info);
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info);
void spotrf_(const char* uplo, const int* n, float* a, const int* lda, int* info);
void spotri_(const char* uplo, const int* n, float* a, const int* lda, int* info);
void openblas_set_num_threads(int n);
}

namespace sp {

void set_blas_threads(int n) { openblas_set_num_threads(n); }

void matmul_nt(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y, bool accumulate) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              1.0f, x, static_cast<int>(k), w, static_cast<int>(k), accumulate ? 1.0f : 0.0f, y, static_cast<int>(n));
}

void matmul_nt_ref(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y, bool accumulate) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) s += static_cast<double>(x[i * k + p]) * w[j * k + p];
      y[i * n + j] = static_cast<float>(s) + (accumulate ? y[i * n + j] : 0.0f);
    }
}

void matmul_sub(const float* a, int64_t lda, const float* b, int64_t ldb, float* y, int64_t ldy, int64_t m, int64_t k,
                int64_t n) {
  if (m == 0 || n == 0 || k == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), -1.0f, a, static_cast<int>(lda), b, static_cast<int>(ldb), 1.0f, y,
              static_cast<int>(ldy));
}

void syrk_upper_accumulate(const float* x, int64_t t, int64_t c, float* h) {
  if (t == 0) return;
  // Row-major upper of X^T X: C = A^T A with A [t, c].
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(c), static_cast<int>(t), 1.0f, x,
              static_cast<int>(c), 1.0f, h, static_cast<int>(c));
}

void syrk_upper_accumulate_ref(const float* x, int64_t t, int64_t c, float* h) {
  for (int64_t i = 0; i < c; ++i)
    for (int64_t j = i; j < c; ++j) {
      double s = 0;
      for (int64_t p = 0; p < t; ++p) s += static_cast<double>(x[p * c + i]) * x[p * c + j];
      h[i * c + j] += static_cast<float>(s);
    }
}

namespace {

void potrf(const char* uplo, const int* n, double* a, int* info) { dpotrf_(uplo, n, a, n, info); }
void potrf(const char* uplo, const int* n, float* a, int* info) { spotrf_(uplo, n, a, n, info); }
void potri(const char* uplo, const int* n, double* a, int* info) { dpotri_(uplo, n, a, n, info); }
void potri(const char* uplo, const int* n, float* a, int* info) { spotri_(uplo, n, a, n, info); }

// In place: `a` holds H (full symmetric), row-major; it becomes U, row-major upper with
// zeros below. Row-major upper == column-major lower: LAPACK sees the transpose, which is
// the same symmetric matrix. Steps: L = chol(H); H^-1 from L; U = chol(H^-1) (upper).
template <typename T>
absl::Status inverse_cholesky_upper_t(std::vector<T>& a, int64_t c) {
  const int n = static_cast<int>(c);
  int info = 0;
  potrf("L", &n, a.data(), &info);
  if (info != 0)
    return absl::FailedPreconditionError(fmt::format("Hessian is not positive definite (leading minor {})", info));
  potri("L", &n, a.data(), &info);
  if (info != 0) return absl::FailedPreconditionError(fmt::format("Hessian is singular (element {})", info));
  // potri filled the column-major lower triangle = row-major upper; mirror it, then
  // factor as the column-major upper U' (U'^T U' = H^-1).
  for (int64_t i = 0; i < c; ++i)
    for (int64_t j = i + 1; j < c; ++j) a[j * c + i] = a[i * c + j];
  potrf("U", &n, a.data(), &info);
  if (info != 0)
    return absl::FailedPreconditionError(fmt::format("inverse Hessian is not positive definite (minor {})", info));
  // Column-major upper U' (a[col * c + row], row <= col) to row-major: transpose in place.
  for (int64_t i = 0; i < c; ++i)
    for (int64_t j = i + 1; j < c; ++j) {
      a[i * c + j] = a[j * c + i];
      a[j * c + i] = T{0};
    }
  for (T v : a)
    if (!std::isfinite(v)) return absl::FailedPreconditionError("the inverse Hessian factor is not finite");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<float>> inverse_cholesky_upper(std::span<const double> h, int64_t c) {
  // float32 as the GPTQ reference does (half the memory, twice the speed); float64 when
  // float32 cannot factorise it.
  std::vector<float> f(h.begin(), h.end());
  if (inverse_cholesky_upper_t(f, c).ok()) return f;
  std::vector<double> d(h.begin(), h.end());
  SP_RETURN_IF_ERROR(inverse_cholesky_upper_t(d, c));
  return std::vector<float>(d.begin(), d.end());
}

absl::Status inverse_cholesky_upper_inplace(std::vector<float>& a, int64_t c) { return inverse_cholesky_upper_t(a, c); }

absl::StatusOr<std::vector<float>> inverse_cholesky_upper_ref(std::span<const double> h, int64_t c) {
  const auto n = static_cast<size_t>(c);
  auto cholesky_lower = [&](std::vector<double> m) -> absl::StatusOr<std::vector<double>> {
    std::vector<double> l(n * n, 0.0);
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j <= i; ++j) {
        double s = m[i * n + j];
        for (size_t k = 0; k < j; ++k) s -= l[i * n + k] * l[j * n + k];
        if (i == j) {
          if (!(s > 0)) return absl::FailedPreconditionError("not positive definite");
          l[i * n + i] = std::sqrt(s);
        } else {
          l[i * n + j] = s / l[j * n + j];
        }
      }
    return l;
  };
  SP_ASSIGN_OR_RETURN(std::vector<double> l, cholesky_lower({h.begin(), h.end()}));
  // H^-1 = L^-T L^-1: invert L by forward substitution.
  std::vector<double> li(n * n, 0.0);
  for (size_t j = 0; j < n; ++j) {
    li[j * n + j] = 1.0 / l[j * n + j];
    for (size_t i = j + 1; i < n; ++i) {
      double s = 0;
      for (size_t k = j; k < i; ++k) s -= l[i * n + k] * li[k * n + j];
      li[i * n + j] = s / l[i * n + i];
    }
  }
  std::vector<double> inv(n * n, 0.0);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) {
      double s = 0;
      for (size_t k = std::max(i, j); k < n; ++k) s += li[k * n + i] * li[k * n + j];
      inv[i * n + j] = s;
    }
  SP_ASSIGN_OR_RETURN(std::vector<double> l2, cholesky_lower(inv));
  std::vector<float> u(n * n, 0.0f);  // U = L2^T
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i; j < n; ++j) u[i * n + j] = static_cast<float>(l2[j * n + i]);
  return u;
}

}  // namespace sp
