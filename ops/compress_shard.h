// The per-shard task: prune and/or NF4-quantize the linear projection weights of one
// shard (a decoder layer, or the embed/norm/lm_head shards, which pass through), and
// produce the output tensors in the bitsandbytes serialization. One shard at a time, so
// memory is bounded by a layer plus a float32 copy of its largest weight.
//
// Thread-safety: pure function of its inputs.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/name_table.h"
#include "common/status.h"
#include "formats/bnb_format.h"
#include "formats/model_layout.h"
#include "ops/double_quant.h"
#include "ops/gguf_plan.h"
#include "ops/int8_rows.h"
#include "ops/nf4.h"
#include "ops/prune.h"

namespace sp {

// Which weights to prune: the smallest |w| (magnitude), the smallest |w| * ||x_j||
// (Wanda, needs calibration), or SparseGPT's OBS selection with weight updates.
enum class PruneMethod { kMagnitude, kWanda, kSparseGpt };
inline constexpr NameRow<PruneMethod> kPruneMethodNames[] = {
    {PruneMethod::kMagnitude, "magnitude"}, {PruneMethod::kWanda, "wanda"}, {PruneMethod::kSparseGpt, "sparsegpt"}};
inline std::string_view prune_method_name(PruneMethod m) { return name_of(kPruneMethodNames, m); }

struct PruneSettings {
  PruneScope scope = PruneScope::kRow;
  double sparsity = 0.0;  // fraction pruned per group; 2:4 is exactly 0.5
  PruneMethod method = PruneMethod::kMagnitude;
};

// Round to nearest (bitsandbytes) or GPTQ on the NF4 grid (needs calibration).
enum class QuantMethod { kRtn, kGptq };
inline constexpr NameRow<QuantMethod> kQuantMethodNames[] = {{QuantMethod::kRtn, "rtn"}, {QuantMethod::kGptq, "gptq"}};

// How GPTQ on a bitsandbytes 4-bit grid chooses the block scales before its loop: per row,
// the factor of absmax (within scale_search) with the least GPTQ loss, one loop per
// candidate (`search`); or per block, importance-weighted (ops/weighted_scales: cheap).
enum class ScaleChoice { kSearch, kWeighted };
inline constexpr NameRow<ScaleChoice> kScaleChoiceNames[] = {{ScaleChoice::kSearch, "search"},
                                                             {ScaleChoice::kWeighted, "weighted"}};

struct GptqSettings {
  double damp = 0.01;     // fraction of mean(diag H)
  int block_size = 128;
  bool act_order = false;
  // NF4 scale search: per row, block scales alpha * absmax with |alpha - 1| <= this, by
  // least GPTQ loss (0: plain absmax). Costs one GPTQ loop per 0.02 step.
  double scale_search = 0.1;
  ScaleChoice scales = ScaleChoice::kSearch;
  // Within a layer, collect each input's statistics after compressing the projections
  // before it (q/k/v, then o, then gate/up, then down): 4 forward passes instead of 1.
  bool true_sequential = false;
};

struct CompressSettings {
  std::optional<PruneSettings> prune;  // absent: no pruning
  std::optional<Nf4Settings> quantize = Nf4Settings{};  // absent: weights stay in their dtype
  QuantMethod quant_method = QuantMethod::kRtn;
  GptqSettings gptq = {};  // GPTQ and SparseGPT
  // quantize.format gguf: every tensor becomes its planned GGUF tensor (InputTensor::gguf);
  // `quantize` is then unset. No pruning, so far.
  std::optional<GgufFtype> gguf = std::nullopt;
  // gguf, rtn: round to nearest weighted by llama.cpp's importance values of the calibration
  // text, computed on the original model layer by layer (a calibrated job whose layers pass
  // on the dense activations, as llama-imatrix runs the original model).
  bool gguf_importance = false;
};

// True when the methods need the layer's inputs on calibration text (gptq, wanda, sparsegpt,
// gguf importance values).
bool needs_calibration(const CompressSettings& s);

// Checks the settings; INVALID_ARGUMENT naming the job spec key and its bad value
// ("'quantize.damp' is 1.5; expected a number in (0, 1)": the CLI's flags mirror the keys).
// The one place these rules live: job specs, `compress` flags and the ops all use it.
absl::Status validate(const CompressSettings& s);

// "magnitude 30% per row + NF4 (block 64, double quant)".
std::string describe(const CompressSettings& s);

// The longest quant_state JSON a projection's result may carry (bitsandbytes' is ~200 bytes).
inline constexpr uint64_t kMaxQuantStateBytes = 512;

// What compress_shard returns for tensor `t`, declared before it exists (the output
// layout of `compress` and of a job's assembly): the bitsandbytes tensors of a quantized
// projection, whose quant_state JSON has a variable length (TensorSpec::max_nbytes), a
// pruned weight in its dtype, or `t` as it is.
std::vector<TensorSpec> output_specs(const ModelTensor& t, const CompressSettings& s);
// True when compress_shard changes `t` (a projection weight, pruned or quantized; with
// format gguf every tensor).
bool compresses(const ModelTensor& t, const CompressSettings& s);

struct InputTensor {
  const ModelTensor* meta = nullptr;  // name, role, stored dtype/shape
  std::span<const uint8_t> bytes;
  const GgufTensorPlan* gguf = nullptr;  // format gguf: where the tensor goes
};

struct OutputTensor {
  TensorSpec spec;
  std::vector<uint8_t> data;
};

struct TensorReport {
  std::string name;
  TensorRole role = TensorRole::kEmbedding;
  bool quantized = false;
  std::optional<PruneStats> prune = std::nullopt;
};

struct ShardResult {
  // Each group must stay in one checkpoint file (a quantized weight and its side
  // tensors); groups are in input order.
  std::vector<std::vector<OutputTensor>> groups;
  std::vector<TensorReport> reports;
};

// The bitsandbytes tensors of one NF4 weight (packed codes, absmax or its double
// quantization, code map, quant_state), in the order nf4_weight_specs() lists them.
std::vector<OutputTensor> bnb_output_tensors(const ModelTensor& meta, std::vector<uint8_t> packed,
                                             const std::vector<float>& absmax, const std::optional<DoubleQuantized>& dq,
                                             const Nf4Settings& s);
// Round-to-nearest NF4 of a weight given as `dtype` bytes (bitsandbytes' quantize_4bit).
// The tensors of an LLM.int8 weight (int8_weight_specs) from its codes and row scales.
std::vector<OutputTensor> int8_output_tensors(const ModelTensor& meta, const Int8Rows& q);
// Round to nearest in the settings' bitsandbytes type: the 4-bit tensors, or int8's.
absl::StatusOr<std::vector<OutputTensor>> rtn_output_tensors(const ModelTensor& meta, std::span<const uint8_t> bytes,
                                                             DType dtype, const Nf4Settings& s,
                                                             const Nf4Backend& backend = nf4_best_backend());

// Compresses one shard. Errors name the tensor ("model.layers.3.mlp.up_proj.weight:
// element 17 (row 0, column 17) is nan ...").
absl::StatusOr<ShardResult> compress_shard(std::span<const InputTensor> inputs,
                                           const CompressSettings& settings,
                                           const Nf4Backend& backend = nf4_best_backend(),
                                           const PruneDevice* prune_device = nullptr);

}  // namespace sp
