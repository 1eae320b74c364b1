// GPTQ and SparseGPT: one optimal-brain-surgeon column loop (algorithms.md §c, §d, §i)
// that quantizes to the NF4 grid and/or prunes a linear weight W [rows, cols] using the
// Hessian of its input, propagating each column's error to the columns not yet visited
// (block size 128 with lazy batch updates, damping, optional act-order).
//
// NF4 here is plain bitsandbytes NF4: blocks of `blocksize` consecutive elements of the
// flattened weight, one absmax each (the choice-2 "static scales" of algorithms.md §d.2:
// computed from the weight before the loop, after zeroing dead channels and a given
// mask; with double quantization the loop uses the absmax as it will decode). Codes are
// chosen as bitsandbytes chooses them (x * (1/absmax) against the midpoints), so with a
// diagonal Hessian the result is byte-identical to round-to-nearest.
//
// Masks: none; a fixed mask (magnitude or Wanda; pruned entries stay exactly zero while
// the others absorb their error); or SparseGPT's adaptive mask, chosen per 128-column
// block from w^2 / [H^-1]_jj on the already-updated weights (per row, per tensor or
// lazily per group of 4 for 2:4), with counts that add up exactly to floor(s * group).
//
// Thread-safety: pure function.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "common/status.h"
#include "formats/bnb_format.h"
#include "ops/double_quant.h"
#include "ops/prune.h"

namespace sp {

inline constexpr double kScaleStep = 0.02;

// A quantization grid whose scales were fixed before the loop (llama.cpp's block formats,
// ops/ggml_grid): the value element (row, col) — col in the original order — takes when
// the loop rounds `x` there; it remembers the code it chose.
class ElementGrid {
 public:
  virtual ~ElementGrid() = default;
  virtual float snap(int64_t row, int64_t col, float x) = 0;
};

struct ObsSettings {
  int block_size = 128;   // lazy-update block (columns)
  double damp = 0.01;     // fraction of mean(diag H) added to the diagonal
  bool act_order = false; // visit columns by decreasing H_jj
  // Quantizer: NF4 with bitsandbytes blocks, or none (pruning only), or (quantize false)
  // a fixed grid of another format (CPU only; no scale search).
  bool quantize = true;
  ElementGrid* grid = nullptr;
  int nf4_blocksize = 64;
  BnbType quant_type = BnbType::kNf4;  // the 4-bit code book the codes are chosen in
  bool double_quant = false;
  // Scale search: each row's block scales are alpha * absmax with alpha in
  // 1 +- k * kScaleStep within +-scale_range, the one with the least GPTQ loss for that
  // row (one loop per candidate; 0: off, plain absmax).
  double scale_range = 0.0;
  // Instead: importance-weighted block scales (ops/weighted_scales), no search loops.
  bool weighted_scales = false;
  // Pruning.
  enum class Mask { kNone, kFixed, kAdaptive } mask = Mask::kNone;
  const std::vector<uint8_t>* fixed_mask = nullptr;  // kFixed: 1 = pruned, [rows, cols]
  PruneScope scope = PruneScope::kRow;               // kAdaptive
  double sparsity = 0.0;                              // kAdaptive, tensor/row scopes
};

struct ObsResult {
  std::vector<float> weight;  // the final values [rows, cols] (as NF4 decodes them when quantized)
  // When quantized: the bitsandbytes encoding.
  std::vector<uint8_t> packed;
  std::vector<float> absmax;              // as computed (before double quantization)
  std::optional<DoubleQuantized> dq;      // when double_quant
  uint64_t pruned = 0;                    // entries the mask removed
  uint64_t dead_columns = 0;              // input channels never active (H_jj == 0), zeroed
  double loss = 0;                        // sum (w - q)^2 / d^2 / 2
  double damp_used = 0;                   // the damping fraction that factorised
};

// The column loop's problem once dead channels and the fixed mask are applied: W
// [rows, cols] and the mask (1 = pruned; empty: none) in the ORIGINAL column order, and
// perm[j] = the original column of the j-th visited column (act-order). Engines take W,
// the mask and H to visiting order themselves (a GPU does it on the device).
struct ObsProblem {
  int64_t rows = 0, cols = 0;
  std::vector<float> w;
  std::vector<uint8_t> mask;
  std::vector<int64_t> perm;
};

struct ObsLoopResult {
  // Final loop only:
  std::vector<float> w;         // final values, original column order
  std::vector<uint8_t> mask;    // pruned entries (any order; empty when nothing is masked)
  std::vector<uint8_t> codes;   // NF4 codes, original flattened order (or, from a device,
  std::vector<uint8_t> packed;  // already packed, an odd count's spare nibble left for the caller)
  std::vector<double> row_loss;
};

// Where the column loops run, with its U already factorised: the CPU (the default) or
// a device.
class ObsEngine {
 public:
  virtual ~ObsEngine() = default;
  // One column loop with NF4 scales `scale` (per original flattened block, as they
  // decode; empty: no quantization). `final`: w, mask and codes are wanted, else only
  // the row losses.
  virtual absl::StatusOr<ObsLoopResult> loop(const ObsSettings& s, const std::vector<float>& scale, bool final) = 0;
  // The row losses of one loop per candidate scale set (GPTQ's scale search); engines
  // may run them together. By default one loop() after the other.
  virtual absl::StatusOr<std::vector<std::vector<double>>> losses(const ObsSettings& s,
                                                                  const std::vector<std::vector<float>>& scales);
};

// Makes a device engine for a problem with U factorised from H (full symmetric,
// original column order; the device takes it to the problem's visiting order) + `add` on
// the diagonal in float32 — or nullptr (too big for the device, no device, not positive
// definite in float32 at that damping): the CPU runs it, with its damping ladder. An
// engine whose loop fails hands the whole problem back to the CPU as well, so the result
// never depends on where a failure happened.
using ObsDevice = std::function<std::unique_ptr<ObsEngine>(const ObsProblem&, const ObsSettings&,
                                                           const std::vector<float>& h, float add)>;

// SparseGPT's adaptive mask of one block (per row or per tensor; not 2:4): from the
// block's updated weights w1[rows, nb] and U's diagonal d[nb], mask[rows, nb] (1 =
// prune), with counts that telescope to floor(s * group) over the whole weight. Shared
// by the CPU loop and device engines.
absl::Status obs_block_mask(const ObsSettings& s, int64_t rows, int64_t b0, int64_t nb, const float* w1,
                            const float* d, uint8_t* mask);

// `h` is the Hessian [cols, cols] (full, symmetric). FAILED_PRECONDITION when no
// damping up to 100% of the mean diagonal makes it factorise; INVALID_ARGUMENT for bad
// shapes/settings (2:4 with act-order, a mask of the wrong size, NaN/Inf weights).
absl::StatusOr<ObsResult> obs_compress(std::vector<float> w, int64_t rows, int64_t cols, std::vector<float> h,
                                       const ObsSettings& s, const ObsDevice* device = nullptr);

}  // namespace sp
