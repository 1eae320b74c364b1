#include "ops/obs_compress.h"
#include "ops/weighted_scales.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

#include "fmt/format.h"
#include "ops/linalg.h"
#include "ops/nf4.h"

namespace sp {
namespace {

// H[perm[i], perm[j]]: the Hessian in visiting order (h itself when act-order moved
// nothing).
std::vector<float> permuted(std::vector<float> h, const std::vector<int64_t>& perm) {
  const auto c = static_cast<int64_t>(perm.size());
  bool identity = true;
  for (int64_t j = 0; j < c && identity; ++j) identity = perm[j] == j;
  if (identity) return h;
  std::vector<float> hp(h.size());
  for (int64_t i = 0; i < c; ++i) {
    const float* src = &h[perm[i] * c];
    float* dst = &hp[i * c];
    for (int64_t j = 0; j < c; ++j) dst[j] = src[perm[j]];
  }
  return hp;
}

// mean(diag H) summed in visiting order (the damping's unit).
double mean_diagonal(const std::vector<float>& h, const std::vector<int64_t>& perm) {
  const auto c = static_cast<int64_t>(perm.size());
  double mean = 0;
  for (int64_t j = 0; j < c; ++j) mean += h[perm[j] * c + perm[j]];
  return mean / static_cast<double>(c);
}

// Damping fractions added in turn, each from the undamped H (algorithms.md §h).
constexpr double kDampSteps[] = {0.0, 0.0025, 0.005, 0.0075, 0.01, 0.04, 0.09, 0.24, 0.49, 0.99};

// U for H + p * mean * I, trying growing p; float32 in place first, float64
// (algorithms.md §h) when float32 fails at a damping.
absl::StatusOr<std::vector<float>> factorise(const std::vector<float>& h, int64_t c, double damp, double mean,
                                             double* used) {
  absl::Status last;
  for (double extra : kDampSteps) {
    const double p = damp + extra;
    if (p >= 1.0) break;
    std::vector<float> a = h;
    for (int64_t j = 0; j < c; ++j) a[j * c + j] += static_cast<float>(p * mean);
    last = inverse_cholesky_upper_inplace(a, c);
    if (last.ok()) {
      *used = p;
      return a;
    }
    a.clear();
    a.shrink_to_fit();
    std::vector<double> d(h.begin(), h.end());
    for (int64_t j = 0; j < c; ++j) d[j * c + j] += p * mean;
    auto u = inverse_cholesky_upper(d, c);
    if (u.ok()) {
      *used = p;
      return u;
    }
    last = u.status();
  }
  return absl::FailedPreconditionError(fmt::format(
      "{} even with damping up to 99% of the mean diagonal; the calibration data may be too small for this layer "
      "(more samples help)", std::string(last.message())));
}

// The OBS column loop with lazy block updates. `scale` (per original flattened block) is
// the NF4 scale as it decodes; empty: no quantization.
// `w` and `mask` are in visiting order; so is the result's w.
absl::StatusOr<ObsLoopResult> column_loop(const ObsProblem& p, const std::vector<float>& vw,
                                          const std::vector<uint8_t>& vmask, const std::vector<float>& u,
                                          const ObsSettings& s, const std::vector<float>& scale) {
  const int64_t rows = p.rows, cols = p.cols;
  const auto n = static_cast<size_t>(rows * cols);
  const bool quantize = !scale.empty();
  const auto bs = static_cast<size_t>(s.nf4_blocksize);
  const bool nm = s.mask == ObsSettings::Mask::kAdaptive && s.scope == PruneScope::kTwoFour;
  ObsLoopResult r;
  r.w = vw;
  r.mask = vmask;
  r.row_loss.assign(static_cast<size_t>(rows), 0.0);
  if (quantize) r.codes.assign(n, 7);
  std::vector<float>& w = r.w;
  std::vector<uint8_t>& mask = r.mask;
  const int64_t B = s.block_size;
  std::vector<float> w1, e, diag;
  std::vector<uint8_t> mblk;
  for (int64_t b0 = 0; b0 < cols; b0 += B) {
    const int64_t b1 = std::min(b0 + B, cols), nb = b1 - b0;
    w1.assign(static_cast<size_t>(rows * nb), 0.0f);
    e.assign(static_cast<size_t>(rows * nb), 0.0f);
    for (int64_t i = 0; i < rows; ++i) std::copy_n(&w[i * cols + b0], nb, &w1[i * nb]);
    if (s.mask == ObsSettings::Mask::kAdaptive && !nm) {
      diag.resize(static_cast<size_t>(nb));
      mblk.resize(static_cast<size_t>(rows * nb));
      for (int64_t j = 0; j < nb; ++j) diag[j] = u[(b0 + j) * cols + b0 + j];
      SP_RETURN_IF_ERROR(obs_block_mask(s, rows, b0, nb, w1.data(), diag.data(), mblk.data()));
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < nb; ++j) mask[i * cols + b0 + j] = mblk[i * nb + j];
    }
    for (int64_t j = 0; j < nb; ++j) {
      const int64_t col = b0 + j;
      const float d = u[col * cols + col];
      if (nm && j % 4 == 0) {  // 2:4 chosen lazily on the updated weights
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
        const bool pruned = mask[i * cols + col] != 0;
        if (quantize) {
          const size_t flat = static_cast<size_t>(i * cols + p.perm[col]);  // original position
          const float sc = scale[flat / bs];
          const uint8_t code = bnb4_code_of(s.quant_type, (pruned ? 0.0f : x) * (1.0f / sc));
          r.codes[flat] = code;
          q = pruned ? 0.0f : bnb4_code(s.quant_type)[code] * sc;
        } else if (pruned) {
          q = 0.0f;
        } else if (s.grid) {
          q = s.grid->snap(i, p.perm[col], x);
        }
        const float err = (x - q) / d;
        r.row_loss[i] += static_cast<double>(x - q) * (x - q) / (static_cast<double>(d) * d) / 2;
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
  return r;
}

}  // namespace

absl::StatusOr<std::vector<std::vector<double>>> ObsEngine::losses(const ObsSettings& s,
                                                                    const std::vector<std::vector<float>>& scales) {
  std::vector<std::vector<double>> out;
  for (const auto& scale : scales) {
    SP_ASSIGN_OR_RETURN(ObsLoopResult r, loop(s, scale, /*final=*/false));
    out.push_back(std::move(r.row_loss));
  }
  return out;
}

absl::Status obs_block_mask(const ObsSettings& s, int64_t rows, int64_t b0, int64_t nb, const float* w1,
                            const float* d, uint8_t* mask) {
  std::vector<float> score(static_cast<size_t>(rows * nb));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < nb; ++j) score[i * nb + j] = w1[i * nb + j] * w1[i * nb + j] / (d[j] * d[j]);
  const int64_t b1 = b0 + nb;
  const bool tensor = s.scope == PruneScope::kTensor;
  const uint64_t group0 = static_cast<uint64_t>(tensor ? rows * b0 : b0);
  const uint64_t group1 = static_cast<uint64_t>(tensor ? rows * b1 : b1);
  const uint64_t k = prune_count(s.sparsity, group1) - prune_count(s.sparsity, group0);
  const uint64_t size = group1 - group0;
  auto m = tensor ? prune_mask(score, 1, rows * nb, PruneScope::kTensor, size ? double(k) / double(size) : 0.0)
                  : prune_mask(score, rows, nb, PruneScope::kRow, size ? double(k) / double(size) : 0.0);
  if (!m.ok()) return m.status();
  std::copy(m->begin(), m->end(), mask);
  return absl::OkStatus();
}

namespace {

// Columns of a row-major [rows, cols] matrix in visiting order: out[i][j] = m[i][perm[j]].
template <typename T>
std::vector<T> visiting_order(const std::vector<T>& m, int64_t rows, const std::vector<int64_t>& perm) {
  const auto cols = static_cast<int64_t>(perm.size());
  std::vector<T> out(m.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) out[i * cols + j] = m[i * cols + perm[j]];
  return out;
}

// The CPU engine: the column loop above on U from factorise() (LAPACK, float32, then
// float64 and more damping).
class CpuEngine final : public ObsEngine {
 public:
  CpuEngine(const ObsProblem& p, std::vector<float> u)
      : p_(p),
        vw_(visiting_order(p.w, p.rows, p.perm)),
        vmask_(p.mask.empty() ? std::vector<uint8_t>(p.w.size(), 0) : visiting_order(p.mask, p.rows, p.perm)),
        u_(std::move(u)) {}
  absl::StatusOr<ObsLoopResult> loop(const ObsSettings& s, const std::vector<float>& scale, bool) override {
    SP_ASSIGN_OR_RETURN(ObsLoopResult r, column_loop(p_, vw_, vmask_, u_, s, scale));
    std::vector<float> row(static_cast<size_t>(p_.cols));  // back to the original order, a row at a time
    for (int64_t i = 0; i < p_.rows; ++i) {
      float* wr = &r.w[i * p_.cols];
      for (int64_t j = 0; j < p_.cols; ++j) row[p_.perm[j]] = wr[j];
      std::copy(row.begin(), row.end(), wr);
    }
    return r;
  }

 private:
  const ObsProblem& p_;
  std::vector<float> vw_;
  std::vector<uint8_t> vmask_;
  std::vector<float> u_;
};

// Steps 5-6 on an engine already factorised: the scale search, double quantization, the
// final loop. `absmax` is the static absmax (updated by the search).
struct Loops {
  std::vector<float> absmax;
  std::optional<DoubleQuantized> dq;
  ObsLoopResult r;
};

absl::StatusOr<Loops> run_loops(ObsEngine& engine, const ObsProblem& p, const ObsSettings& s,
                                std::vector<float> absmax, const std::optional<DoubleQuantized>& chosen_dq) {
  Loops out;
  const int64_t rows = p.rows, cols = p.cols;
  const auto bs = static_cast<size_t>(s.nf4_blocksize);
  std::vector<float> scale;
  if (s.quantize && s.weighted_scales) {  // chosen before (weighted_block_scales): as they decode
    scale = absmax;
    out.dq = chosen_dq;
  } else if (s.quantize) {
    if (s.scale_range > 0) {
      // GPTQ pushes weights outward, so a scale above absmax can win. Rows are
      // independent in the loop: one run per candidate factor gives each row's loss
      // under it, and each row keeps its best factor.
      std::vector<double> best(static_cast<size_t>(rows), INFINITY);
      std::vector<float> alpha(static_cast<size_t>(rows), 1.0f);
      // Candidates 1, 1 - step, 1 + step, 1 - 2 step, ...: a tie keeps the one nearer 1.
      const int steps = static_cast<int>(std::lround(s.scale_range / kScaleStep));
      std::vector<float> factors;
      std::vector<std::vector<float>> trials;
      for (int k = 0; k <= 2 * steps; ++k) {
        const int m = (k + 1) / 2 * (k % 2 ? -1 : 1);
        const float a = static_cast<float>(1.0 + kScaleStep * m);
        factors.push_back(a);
        trials.emplace_back(absmax.size());
        for (size_t b = 0; b < absmax.size(); ++b) trials.back()[b] = absmax[b] * a;
      }
      SP_ASSIGN_OR_RETURN(std::vector<std::vector<double>> loss, engine.losses(s, trials));
      for (size_t k = 0; k < factors.size(); ++k)
        for (int64_t i = 0; i < rows; ++i)
          if (loss[k][i] < best[i]) {
            best[i] = loss[k][i];
            alpha[i] = factors[k];
          }
      // A block takes the factor of the row it starts in.
      for (size_t b = 0; b < absmax.size(); ++b) absmax[b] *= alpha[b * bs / static_cast<size_t>(cols)];
    }
    scale = absmax;
    if (s.double_quant) {  // the loop must use the absmax as it will decode
      out.dq = double_quantize(absmax);
      double_dequantize(out.dq->codes, out.dq->nested_absmax, out.dq->offset, out.dq->map.data(), scale.data());
    }
  }
  SP_ASSIGN_OR_RETURN(out.r, engine.loop(s, scale, /*final=*/true));
  out.absmax = std::move(absmax);
  return out;
}

}  // namespace

absl::StatusOr<ObsResult> obs_compress(std::vector<float> w, int64_t rows, int64_t cols, std::vector<float> h,
                                       const ObsSettings& s, const ObsDevice* device) {
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
  if (s.mask == ObsSettings::Mask::kAdaptive && !nm && !(s.sparsity >= 0 && s.sparsity < 1))
    return absl::InvalidArgumentError(fmt::format("sparsity {} is outside [0, 1)", s.sparsity));
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(w[i]))
      return absl::InvalidArgumentError(fmt::format("element {} (row {}, column {}) is {}", i, i / cols, i % cols, w[i]));
  if (s.block_size <= 0) return absl::InvalidArgumentError("GPTQ block size must be positive");
  if (s.grid && (s.quantize || s.scale_range > 0))
    return absl::InvalidArgumentError("a fixed grid replaces NF4 and its scale search");
  if (s.quantize && !nf4_blocksize_ok(s.nf4_blocksize))
    return absl::InvalidArgumentError(fmt::format("NF4 blocksize {} is not one bitsandbytes accepts", s.nf4_blocksize));

  ObsResult out;
  // 1. Dead input channels: H_jj = 1, W[:, j] = 0. A fixed mask zeroes its entries.
  for (int64_t j = 0; j < cols; ++j)
    if (h[j * cols + j] == 0.0) {
      h[j * cols + j] = 1.0;
      for (int64_t i = 0; i < rows; ++i) w[i * cols + j] = 0.0f;
      ++out.dead_columns;
    }
  if (s.mask == ObsSettings::Mask::kFixed) {
    const std::vector<uint8_t>& mask = *s.fixed_mask;
    for (size_t i = 0; i < n; ++i)
      if (mask[i]) w[i] = 0.0f;
  }

  // 2. Block absmax of the weight as it stands (static scales, algorithms.md §d.2 choice 2),
  // or the importance-weighted choice among multiples of it.
  const auto bs = static_cast<size_t>(s.nf4_blocksize);
  std::optional<DoubleQuantized> chosen_dq;
  if (s.quantize && s.weighted_scales) {
    std::vector<float> hdiag(static_cast<size_t>(cols));
    for (int64_t j = 0; j < cols; ++j) hdiag[j] = static_cast<float>(h[j * cols + j]);
    WeightedScales ws = weighted_block_scales(w, rows, cols, hdiag, s.nf4_blocksize, s.quant_type, s.double_quant);
    out.absmax = std::move(ws.absmax);
    chosen_dq = std::move(ws.dq);
  } else if (s.quantize) {
    out.absmax.assign(nf4_num_blocks(n, bs), 0.0f);
    for (size_t i = 0; i < n; ++i) out.absmax[i / bs] = std::fmax(out.absmax[i / bs], std::fabs(w[i]));
  }

  // 3. Act-order: visit columns by decreasing H_jj (stable: ties keep their order).
  ObsProblem p;
  p.rows = rows;
  p.cols = cols;
  p.perm.resize(static_cast<size_t>(cols));
  std::iota(p.perm.begin(), p.perm.end(), 0);
  if (s.act_order)
    std::stable_sort(p.perm.begin(), p.perm.end(),
                     [&](int64_t a, int64_t b) { return h[a * cols + a] > h[b * cols + b]; });
  p.w = std::move(w);
  if (s.mask == ObsSettings::Mask::kFixed) p.mask = *s.fixed_mask;

  // 4-6. U = upper Cholesky factor of (H + damping)^-1, the scale search and the final
  // loop: on the device when there is one and it copes, else (or after any failure
  // there) on the CPU.
  std::optional<Loops> loops;
  const double mean = mean_diagonal(h, p.perm);
  if (device && *device && !s.grid) {  // devices know NF4 only
    if (std::unique_ptr<ObsEngine> engine = (*device)(p, s, h, static_cast<float>(s.damp * mean))) {
      auto l = run_loops(*engine, p, s, out.absmax, chosen_dq);
      if (l.ok()) {
        loops = std::move(*l);
        out.damp_used = s.damp;
      }
    }
  }
  if (!loops) {
    h = permuted(std::move(h), p.perm);
    SP_ASSIGN_OR_RETURN(std::vector<float> u, factorise(h, cols, s.damp, mean, &out.damp_used));
    h = {};
    CpuEngine cpu(p, std::move(u));
    SP_ASSIGN_OR_RETURN(Loops l, run_loops(cpu, p, s, out.absmax, chosen_dq));
    loops = std::move(l);
  }
  out.absmax = std::move(loops->absmax);
  out.dq = std::move(loops->dq);
  ObsLoopResult& r = loops->r;

  // Back to the original column order.
  out.loss = std::accumulate(r.row_loss.begin(), r.row_loss.end(), 0.0);
  for (uint8_t m : r.mask) out.pruned += m;  // empty when nothing was masked
  out.weight = std::move(r.w);
  if (s.quantize) {
    if (!r.packed.empty()) {
      out.packed = std::move(r.packed);
    } else {
      out.packed.assign(nf4_packed_bytes(n), 0);
      for (size_t i = 0; i + 1 < n; i += 2) out.packed[i / 2] = static_cast<uint8_t>(r.codes[i] << 4 | r.codes[i + 1]);
      if (n % 2) out.packed.back() = static_cast<uint8_t>(r.codes[n - 1] << 4);
    }
    // The spare nibble of an odd count encodes a zero-padded element, as bitsandbytes.
    if (n % 2)
      out.packed.back() = static_cast<uint8_t>((out.packed.back() & 0xf0) |
                                               bnb4_code_of(s.quant_type, 0.0f * (1.0f / out.absmax[(n - 1) / bs])));
  }
  return out;
}

}  // namespace sp
