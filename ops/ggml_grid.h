// GPTQ on llama.cpp's grids: a weight quantized block by block in one of the table's block
// types, its per-block parameters (scales, mins, K-quant sub-scales) chosen first by the
// type's own quantizer — with the Hessian's diagonal as the importance of each column, as
// llama-quantize --imatrix weighs them — and then, inside the GPTQ column loop, each
// element's code chosen as the nearest value its block can decode to (ops/obs_compress's
// ElementGrid). bytes() is the quantizer's output with every code replaced by the loop's:
// the parameters stay as chosen, so the file decodes exactly to the loop's values.
// Column order does not matter (act-order visits columns in any order; every block keeps
// its parameters).
//
// Thread-safety: not thread-safe (snap records codes).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "ops/ggml_quants.h"
#include "ops/obs_compress.h"

namespace sp {

class GgmlGrid final : public ElementGrid {
 public:
  // `w` [rows, cols] row-major; `importance`: one value per column (or empty). INVALID_ARGUMENT
  // for a type without blocks (F32, F16, BF16) or rows that are not whole blocks.
  static absl::StatusOr<GgmlGrid> make(GgmlType type, std::span<const float> w, int64_t rows, int64_t cols,
                                       std::span<const float> importance);
  float snap(int64_t row, int64_t col, float x) override;
  // The tensor's bytes with the codes snap() chose (elements never snapped keep the
  // quantizer's codes).
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  GgmlGrid() = default;
  GgmlType type_ = GgmlType::kQ8_0;
  int64_t cols_ = 0, block_ = 32, block_bytes_ = 34;
  std::vector<uint8_t> bytes_;
  std::vector<float> original_, rtn_;  // the weight as given, and as the quantizer's codes decode
};

}  // namespace sp
