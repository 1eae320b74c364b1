// A Hugging Face folder written as one GGUF file for llama.cpp/ollama
// (../shared/docs/gguf-format.md): the metadata `convert_hf_to_gguf.py` writes for the
// architecture (§2), the SentencePiece vocabulary (§4.2), the tensors under llama.cpp's
// names and shapes with Llama's Q/K rows permuted (§3), norms and biases in F32 and every
// other tensor in the asked type (quantized by the reference quantizers, ops/ggml_quants).
// The type is a single ggml type for every quantizable tensor or one of llama-quantize's
// mixes (ops/ggml_ftypes); a tensor whose rows do not fill whole blocks of its type falls
// back (K types to a 32-block type, then F16) and is reported, where llama-quantize gives
// up. With an importance matrix the quantizers weigh each column by it, as llama-quantize
// --imatrix does. Written atomically (GgufWriter).
//
// Architectures `llama`, `qwen2` and `exaone4` (§2.3: written as newer llama.cpp's converter
// writes it; the shared llama.cpp cannot load exaone4), a SentencePiece `tokenizer.model` or
// a byte-level BPE `tokenizer.json` (qwen2, exaone4); Llama-3 RoPE scaling as the generated
// rope_freqs.weight tensor.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "formats/gguf_writer.h"
#include "formats/imatrix_file.h"
#include "formats/model_layout.h"
#include "formats/token_ids.h"
#include "ops/compress_shard.h"
#include "ops/ggml_ftypes.h"
#include "ops/gguf_plan.h"

namespace sp {

struct GgufExportOptions {
  GgufFtype type = *gguf_ftype_from_name("F32");  // the 2-D weights' type or mix (norms, biases: F32)
  const Imatrix* imatrix = nullptr;  // importance per column, as llama-quantize --imatrix uses it
  std::string imatrix_file;          // its name, recorded in the file (quantize.imatrix.file)
  int threads = 0;                   // quantizing each tensor's rows (0: every core); same bytes for any count
  // GPTQ on the grid of each tensor's type: the calibration token ids and the loop's
  // settings (damp, block size, act-order); each layer is calibrated on the compressed ones
  // before it (`sequential`) or on the original model.
  const TokenBatch* gptq_ids = nullptr;
  GptqSettings gptq;
  bool sequential = true;
};

struct GgufExportSummary {
  std::string path;
  int tensors = 0;
  uint64_t bytes = 0;                      // of the file
  std::vector<std::string> fallbacks;      // "blk.0.ffn_down.weight: 172 columns, not whole Q4_0 blocks: F16"
  std::vector<GgufTensorPlan> plan;        // every tensor, in file order
  double gptq_loss = 0;                    // GPTQ: the sum of the layers' losses
  uint64_t weights = 0;                    // elements of the quantizable tensors
  uint64_t weight_bytes = 0;               // and their bytes (bits per weight = 8 * bytes / weights)
};

// The metadata of a GGUF file of the model in `model_dir` (config `c`): what
// convert_hf_to_gguf.py writes (§2.2), the SentencePiece vocabulary (§4.2), the file type,
// and the importance matrix's record when one is used. UNIMPLEMENTED for a vocabulary or
// RoPE scaling it cannot write, saying which.
absl::StatusOr<GgufMetadata> gguf_metadata(const std::string& model_dir, const ModelConfig& c, const GgufFtype& type,
                                           const ImatrixRecord* imatrix = nullptr);

// The tensors export_gguf would write (names, types, shapes, bytes, fallbacks) for a
// described model, without reading its weights; `bytes` is the tensor data only.
absl::StatusOr<GgufExportSummary> plan_gguf(const ModelDescription& desc, const GgufExportOptions& options);

absl::StatusOr<GgufExportSummary> export_gguf(const std::string& model_dir, const std::string& out_path,
                                              const GgufExportOptions& options);

}  // namespace sp
