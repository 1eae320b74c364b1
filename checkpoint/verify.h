// Re-reads a bitsandbytes NF4 checkpoint and checks everything a loader relies on:
// config.json and its quantization_config, every safetensors file, each quantized
// weight's key set, dtypes, shapes, quant_state JSON bytes, code maps and absmax values,
// the model's tensor layout, and (when present) the manifest's digest of every tensor and
// file. With `against`, dequantizes every weight and reports its error against the
// original model.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/confined_path.h"
#include "common/dtype.h"
#include "common/status.h"
#include "formats/bnb_format.h"
#include "formats/model_layout.h"

namespace sp {

struct TensorVerdict {
  std::string name;  // the logical tensor ("model.layers.0.mlp.up_proj.weight")
  bool quantized = false;
  DType dtype = DType::kF32;  // logical dtype (quant_state dtype for NF4 weights)
  std::vector<int64_t> shape;
  std::string problem;  // empty when the tensor checks out
  std::string kind;     // the quantized type: "nf4", "fp4", "int8", or a GGUF tensor's ggml type ("Q4_K")
  // With --against:
  std::optional<double> max_abs_error;
  std::optional<double> rel_rmse;  // sqrt(sum (w' - w)^2 / sum w^2)
  std::optional<double> zero_fraction;
  // With --against, for quantized weights whose codes can be reproduced (see
  // VerifyReport::reference): how many 4-bit codes differ from round-to-nearest.
  std::optional<uint64_t> codes_differ;
  uint64_t codes_total = 0;
};

struct VerifyReport {
  std::string dir;
  std::string architecture;
  bool double_quant = false;
  int blocksize = 0;
  BnbType quant_type = BnbType::kNf4;  // bnb_4bit_quant_type
  bool manifest_checked = false;
  std::string gguf_type;  // a GGUF file: its type or mix ("Q4_K_M"); empty for NF4 folders
  std::optional<std::string> against;
  std::vector<std::string> problems;  // folder-level problems and every tensor problem
  std::vector<TensorVerdict> tensors;
  // With --against: what the codes are compared with ("round-to-nearest", "magnitude 30%
  // per row, then round-to-nearest"; empty when the manifest records a data-dependent
  // method, whose codes cannot be reproduced), and whether every code must equal it, and why.
  std::string reference;
  bool exact = false;
  std::string exact_reason;
  bool ok() const { return problems.empty(); }
};

struct VerifyOptions {
  std::optional<std::string> against;  // the original model: per-tensor error and codes
  // Every code must equal round-to-nearest of `against` (also the default when the
  // manifest records that the checkpoint was made by round-to-nearest).
  bool exact = false;
  std::string root = kAnyRoot;  // every file of the checkpoint must resolve inside
};

// Fills v's error fields (max |got - want|, sqrt(sum (got - want)^2 / sum want^2), the
// fraction of exact zeros in `got`): the one comparison NF4 and GGUF verification share.
void compare_with_original(TensorVerdict& v, const std::vector<float>& got, const std::vector<float>& want);

// NOT_FOUND if the checkpoint (or `against`) is not a folder; any corruption, and with
// exactness any code that differs from round-to-nearest, is reported in the report's
// problems, not as an error status. Every file of `dir` must resolve inside the root
// before it is opened (a file leading outside is a problem, never read).
absl::StatusOr<VerifyReport> verify_checkpoint(const std::string& dir, const VerifyOptions& options);
inline absl::StatusOr<VerifyReport> verify_checkpoint(const std::string& dir, const std::optional<std::string>& against,
                                                      const std::string& root = kAnyRoot) {
  return verify_checkpoint(dir, VerifyOptions{against, false, root});
}

// Reads a bitsandbytes NF4 checkpoint one tensor at a time as float32 (NF4 weights
// dequantized as bitsandbytes decodes them), for evaluating it without holding it whole.
// open() verifies the checkpoint first and refuses one with problems (the first few
// named). desc() describes the logical model (every tensor F32).
class CheckpointDecoder {
 public:
  static absl::StatusOr<std::unique_ptr<CheckpointDecoder>> open(const std::string& dir,
                                                                 const std::string& root = kAnyRoot);
  ~CheckpointDecoder();
  const ModelDescription& desc() const;
  absl::StatusOr<std::vector<float>> decode(const std::string& name) const;

 private:
  struct Impl;
  explicit CheckpointDecoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sp
