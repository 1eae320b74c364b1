// Importance-weighted block scales for bitsandbytes' 4-bit types (issue 15): each block's
// scale is chosen among alpha * absmax, alpha in [kWeightedScaleLow, kWeightedScaleHigh] by
// kWeightedScaleStep, by the least Σ_j h_j (w_j − ŵ_j)² over the block, h_j the Hessian's
// diagonal at the element's column (the mean squared activation of that input) and ŵ_j what
// the block decodes to — with double quantization the scale as it decodes after its own
// 8-bit rounding: a first pass chooses raw scales, their double quantization fixes the
// offset and nested scales, a second pass chooses each block's 8-bit code among the codes
// the candidates round to. GPTQ then picks the codes with these scales fixed.
//
// Thread-safety: pure function.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "formats/bnb_format.h"
#include "ops/double_quant.h"

namespace sp {

inline constexpr float kWeightedScaleLow = 0.70f, kWeightedScaleHigh = 1.10f, kWeightedScaleStep = 0.01f;

struct WeightedScales {
  std::vector<float> absmax;          // the chosen scales (decoded values with double quantization)
  std::optional<DoubleQuantized> dq;  // with double quantization: the codes that decode to them
};

// `w` [rows, cols] row-major, `hdiag` [cols]; blocks of `blocksize` consecutive elements of
// the flattened weight (bitsandbytes' layout; a block may span rows).
WeightedScales weighted_block_scales(const std::vector<float>& w, int64_t rows, int64_t cols,
                                     const std::vector<float>& hdiag, int blocksize, BnbType type, bool double_quant);

}  // namespace sp
