#include "ops/obs_compress.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "fmt/format.h"
#include "ops/linalg.h"
#include "ops/nf4.h"

namespace sp {
namespace {

// Damping fractions tried in turn, each from the undamped H (algorithms.md §h).
constexpr double kDampSteps[] = {0.0, 0.0025, 0.005, 0.0075, 0.01, 0.04, 0.09, 0.24, 0.49, 0.99};

absl::StatusOr<std::vector<float>> factorise(const std::vector<double>& h, int64_t c, double damp, double* used) {
  double mean = 0;
  for (int64_t j = 0; j < c; ++j) mean += h[j * c + j];
  mean /= static_cast<double>(c);
  absl::Status last;
  for (double extra : kDampSteps) {
    const double p = damp + extra;
    std::vector<double> a = h;
    for (int64_t j = 0; j < c; ++j) a[j * c + j] += p * mean;
    auto u = inverse_cholesky_upper(a, c);
    if (u.ok()) {
      *used = p;
      return u;
    }
    last = u.status();
  }
  return absl::FailedPreconditionError(fmt::format(
      "{} even with damping {:g} of the mean diagonal; the calibration data may be too small for this layer "
      "(more samples help)", std::string(last.message()), damp + kDampSteps[std::size(kDampSteps) - 1]));
}

}  // namespace

absl::StatusOr<ObsResult> obs_compress(std::vector<float> w, int64_t rows, int64_t cols, std::vector<double> h,
                                       const ObsSettings& s) {
  const auto n = static_cast<size_t>(rows * cols);
  if (w.size() != n || h.size() != static_cast<size_t>(cols * cols))
    return absl::InvalidArgumentError(fmt::format("weight/Hessian sizes do not match a {}x{} weight", rows, cols));
  if (s.mask == ObsSettings::Mask::kFixed && (!s.fixed_mask || s.fixed_mask->size() != n))
    return absl::InvalidArgumentError("the pruning mask does not match the weight");
  const bool nm = s.mask == ObsSettings::Mask::kAdaptive && s.scope == PruneScope::kTwoFour;
  if (nm && cols % 4 != 0)
    return absl::InvalidArgumentError(fmt::format("2:4 pruning needs a column count divisible by 4, this weight has {}", cols));
  if (nm && s.act_order)
    return absl::InvalidArgumentError("act-order cannot be combined with 2:4 pruning (groups of 4 are in column order)");
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(w[i]))
      return absl::InvalidArgumentError(fmt::format("element {} (row {}, column {}) is {}", i, i / cols, i % cols, w[i]));
  if (s.block_size <= 0) return absl::InvalidArgumentError("GPTQ block size must be positive");

  ObsResult out;
  // 1. Dead input channels: H_jj = 1, W[:, j] = 0.
  for (int64_t j = 0; j < cols; ++j)
    if (h[j * cols + j] == 0.0) {
      h[j * cols + j] = 1.0;
      for (int64_t i = 0; i < rows; ++i) w[i * cols + j] = 0.0f;
      ++out.dead_columns;
    }
  std::vector<uint8_t> mask(n, 0);
  if (s.mask == ObsSettings::Mask::kFixed) {
    mask = *s.fixed_mask;
    for (size_t i = 0; i < n; ++i)
      if (mask[i]) w[i] = 0.0f;
  }

  // 2. Static NF4 scales from the weight as it stands (dead channels and fixed mask applied).
  std::vector<float> scale;  // per flattened block, as it decodes
  const auto bs = static_cast<size_t>(s.nf4_blocksize);
  if (s.quantize) {
    if (!nf4_blocksize_ok(s.nf4_blocksize))
      return absl::InvalidArgumentError(fmt::format("NF4 blocksize {} is not one bitsandbytes accepts", s.nf4_blocksize));
    out.absmax.assign(nf4_num_blocks(n, bs), 0.0f);
    for (size_t i = 0; i < n; ++i) out.absmax[i / bs] = std::fmax(out.absmax[i / bs], std::fabs(w[i]));
    scale = out.absmax;
    if (s.double_quant) {
      out.dq = double_quantize(out.absmax);
      double_dequantize(out.dq->codes, out.dq->nested_absmax, out.dq->offset, out.dq->map.data(), scale.data());
    }
  }

  // 3. Act-order permutation (columns by decreasing H_jj; stable, so ties keep order).
  std::vector<int64_t> perm(static_cast<size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  if (s.act_order)
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return h[a * cols + a] > h[b * cols + b]; });
  auto permuted = [&](const auto& m) {
    std::decay_t<decltype(m)> p(m.size());
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) p[i * cols + j] = m[i * cols + perm[j]];
    return p;
  };
  if (s.act_order) {
    w = permuted(w);
    mask = permuted(mask);
    std::vector<double> hp(h.size());
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j) hp[i * cols + j] = h[perm[i] * cols + perm[j]];
    h = std::move(hp);
  }

  // 4. U = upper Cholesky factor of (H + damping)^-1.
  SP_ASSIGN_OR_RETURN(std::vector<float> u, factorise(h, cols, s.damp, &out.damp_used));
  h.clear();
  h.shrink_to_fit();

  // 5. The column loop.
  std::vector<uint8_t> codes(s.quantize ? n : 0, 7);
  const int64_t B = s.block_size;
  std::vector<float> w1, e;
  std::vector<float> score;
  std::vector<uint32_t> scratch;
  for (int64_t b0 = 0; b0 < cols; b0 += B) {
    const int64_t b1 = std::min(b0 + B, cols), nb = b1 - b0;
    w1.assign(static_cast<size_t>(rows * nb), 0.0f);
    e.assign(static_cast<size_t>(rows * nb), 0.0f);
    for (int64_t i = 0; i < rows; ++i)
      std::copy_n(&w[i * cols + b0], nb, &w1[i * nb]);
    if (s.mask == ObsSettings::Mask::kAdaptive && !nm) {
      // Mask of this block from w^2 / d^2 on the updated weights; counts telescope to
      // floor(s * group) over the whole weight.
      score.resize(static_cast<size_t>(rows * nb));
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < nb; ++j) {
          const float d = u[(b0 + j) * cols + b0 + j];
          score[i * nb + j] = w1[i * nb + j] * w1[i * nb + j] / (d * d);
        }
      std::vector<uint8_t> bm(static_cast<size_t>(rows * nb), 0);
      if (s.scope == PruneScope::kTensor) {
        const uint64_t k = prune_count(s.sparsity, static_cast<uint64_t>(rows * b1)) -
                           prune_count(s.sparsity, static_cast<uint64_t>(rows * b0));
        auto m = prune_mask(score, 1, rows * nb, PruneScope::kTensor,
                            rows * nb ? static_cast<double>(k) / static_cast<double>(rows * nb) : 0.0);
        if (!m.ok()) return m.status();
        bm = std::move(*m);
      } else {
        const uint64_t k = prune_count(s.sparsity, static_cast<uint64_t>(b1)) -
                           prune_count(s.sparsity, static_cast<uint64_t>(b0));
        auto m = prune_mask(score, rows, nb, PruneScope::kRow, nb ? static_cast<double>(k) / static_cast<double>(nb) : 0.0);
        if (!m.ok()) return m.status();
        bm = std::move(*m);
      }
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < nb; ++j) mask[i * cols + b0 + j] = bm[i * nb + j];
    }
    for (int64_t j = 0; j < nb; ++j) {
      const int64_t col = b0 + j;
      const float d = u[col * cols + col];
      if (nm && j % 4 == 0) {
        for (int64_t i = 0; i < rows; ++i) {
          float g[4];
          for (int t = 0; t < 4; ++t) {
            const float dd = u[(col + t) * cols + col + t];
            g[t] = w1[i * nb + j + t] * w1[i * nb + j + t] / (dd * dd);
          }
          int idx[4] = {0, 1, 2, 3};
          std::stable_sort(idx, idx + 4, [&](int a, int b) { return g[a] < g[b]; });
          mask[i * cols + col + idx[0]] = 1;
          mask[i * cols + col + idx[1]] = 1;
        }
      }
      const float* urow = &u[col * cols];
      for (int64_t i = 0; i < rows; ++i) {
        const float x = w1[i * nb + j];
        float q = x;
        const size_t flat = static_cast<size_t>(i * cols + perm[col]);  // original position
        const bool pruned = mask[i * cols + col] != 0;
        if (s.quantize) {
          const float sc = scale[flat / bs];
          const float inv = 1.0f / sc;
          const uint8_t code = nf4_code_of((pruned ? 0.0f : x) * inv);
          codes[flat] = code;
          q = pruned ? 0.0f : kNf4Code[code] * sc;
        } else if (pruned) {
          q = 0.0f;
        }
        const float err = (x - q) / d;
        out.loss += static_cast<double>(x - q) * (x - q) / (static_cast<double>(d) * d) / 2;
        float* row = &w1[i * nb];
        for (int64_t t = j + 1; t < nb; ++t) row[t] -= err * urow[b0 + t];
        row[j] = q;
        e[i * nb + j] = err;
      }
    }
    for (int64_t i = 0; i < rows; ++i) std::copy_n(&w1[i * nb], nb, &w[i * cols + b0]);
    // W[:, b1:] -= E * U[b0:b1, b1:]
    if (b1 < cols) matmul_sub(e.data(), nb, &u[b0 * cols + b1], cols, &w[b1], cols, rows, nb, cols - b1);
  }

  // 6. Back to the original column order.
  out.weight.assign(n, 0.0f);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      out.weight[i * cols + perm[j]] = w[i * cols + j];
      out.pruned += mask[i * cols + j];
    }
  if (s.quantize) {
    out.packed.assign(nf4_packed_bytes(n), 0);
    for (size_t i = 0; i < n; i += 2) {
      // The spare nibble of an odd count encodes a zero-padded element, as bitsandbytes.
      const uint8_t lo = i + 1 < n ? codes[i + 1] : nf4_code_of(0.0f * (1.0f / out.absmax[i / bs]));
      out.packed[i / 2] = static_cast<uint8_t>(codes[i] << 4 | lo);
    }
  }
  return out;
}

}  // namespace sp
