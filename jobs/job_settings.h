// A job spec — the YAML a user writes, the message that crosses the wire — validated
// once into typed settings. This is the one place the spec's words become enums (through
// the name tables next to the enums in ops/), its defaults are set, and its rules are
// checked (the ops' own rules by ops' validate()). The YAML reader, the `compress` flags,
// the coordinator and the workers all go through here.
//
//   name: stories-nf4            # optional; default: the output folder's name
//   model: /models/stories260k   # Hugging Face folder (under the coordinator's model root)
//   output: /out/stories-nf4     # new folder (under the output root)
//   overwrite: false             # true: replace an existing output at the end
//   prune: {method: none|magnitude|wanda|sparsegpt, sparsity: 0.3, scope: tensor|row|2:4}
//   quantize: {format: nf4|fp4|int8|gguf|none, type: Q4_0 (gguf), method: rtn|gptq, blocksize: 64, double_quant: true,
//              compute_dtype: bfloat16, act_order: true, damp: 0.01, scale_search: 0.1,
//              gptq_block_size: 128}
//   calibrate: {ids: FILE, samples: 128, seq_len: 0, mode: sequential|pipelined,
//               true_sequential: false, stage_memory: 10GiB,
//               activations: float32|bfloat16,
//               checkpoint_every: 1}                            # gptq, wanda, sparsegpt
//   eval: {ids: FILE, samples: 0, seq_len: 0}   # an evaluation job (no output)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "ops/compress_shard.h"
#include "ops/ggml_ftypes.h"
#include "shardpress.pb.h"

namespace sp {

enum class JobKind { kCompress, kEvaluate };

// Where the calibration text comes from and how layers see it.
struct CalibrationSettings {
  std::string ids;  // token-id file, one sequence per line
  int64_t samples = 128;
  int64_t seq_len = 0;  // 0: the first line's length
  bool pipelined = false;  // false: sequential (each layer sees the compressed ones before)
  uint64_t stage_memory = 10ull << 30;
  DType activations = DType::kF32;  // the layer boundaries' dtype between tasks
  // Sequential jobs: a boundary goes to the coordinator every this many layers (and at
  // stage ends); the ones between stay on the worker that made them.
  int checkpoint_every = 1;
};

// Perplexity of the model on token ids (each line scored alone).
struct EvalSettings {
  std::string ids;
  std::string choices;  // multiple-choice items instead of ids (evaluation jobs)
  int64_t samples = 0;  // 0: every line
  int64_t seq_len = 0;  // 0: the first line's length
};

struct JobSettings {
  JobKind kind = JobKind::kCompress;
  CompressSettings compress;                       // compression jobs
  std::optional<CalibrationSettings> calibration;  // set when compress needs data
  std::optional<EvalSettings> eval;                // evaluation jobs
  // evaluate: a compression job scores its output and the original model on this text;
  // with a gate, it fails when the output's perplexity exceeds the original's by more.
  std::optional<EvalSettings> evaluate;
  std::optional<double> max_ppl_increase;
  std::optional<double> max_acc_decrease;  // evaluate.max_acc_decrease (accuracy points)
  // quantize.format: gguf — compress.gguf holds the type or mix (compress.quantize is then
  // unset: no NF4); round to nearest may be weighted by llama.cpp's importance values, read
  // from a file (quantize.imatrix) or computed on calibrate.ids (compress.gguf_importance).
  std::string gguf_imatrix;  // quantize.imatrix: llama.cpp importance-matrix file, or empty
};

// Every default of a spec (the common bitsandbytes setting: NF4, block 64, double quant,
// bf16 compute), with empty name, model and output.
shardpress::v1::JobSpec default_job_spec();
// Defaults that follow other keys, for a spec built from defaults: 2:4 prunes 0.5, and
// act-order (free with static NF4 scales) cannot serve 2:4's groups of 4 in column order.
// Also normalizes a default written out (calibrate.activations: float32 is the empty
// default, calibrate.checkpoint_every: 1 is 0), so that it does not change the spec's digest.
void apply_dependent_defaults(shardpress::v1::JobSpec& spec, bool sparsity_given, bool act_order_given);

// The typed settings of `spec`, or INVALID_ARGUMENT naming the key and its bad value.
absl::StatusOr<JobSettings> job_settings(const shardpress::v1::JobSpec& spec);
inline absl::Status validate_job_spec(const shardpress::v1::JobSpec& spec) { return job_settings(spec).status(); }

// The compression settings of a spec already accepted (validated at submit).
CompressSettings compress_settings(const shardpress::v1::JobSpec& spec);

// An evaluation job (eval.ids set): perplexity on the workers, nothing written.
inline bool is_eval_job(const shardpress::v1::JobSpec& spec) {
  return !spec.eval().ids().empty() || !spec.eval().choices().empty();
}

// True when the spec's methods need calibration data.
bool spec_needs_calibration(const shardpress::v1::JobSpec& spec);

// "magnitude 30% per row + NF4 (block 64, double quant)".
std::string describe_spec(const shardpress::v1::JobSpec& spec);

// A digest of a (normalized: defaults filled, paths resolved) spec: two specs that ask for
// the same job have the same digest. 32 hex digits.
std::string spec_digest(const shardpress::v1::JobSpec& spec);

// What differs between two specs, one line per field: "quantize.blocksize: 64 -> 128".
std::vector<std::string> spec_differences(const shardpress::v1::JobSpec& before, const shardpress::v1::JobSpec& now);

}  // namespace sp
