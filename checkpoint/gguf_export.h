// A Hugging Face folder written as one GGUF file for llama.cpp/ollama
// (../shared/docs/gguf-format.md): the metadata `convert_hf_to_gguf.py` writes for the
// architecture (§2), the SentencePiece vocabulary (§4.2), the tensors under llama.cpp's
// names and shapes with Llama's Q/K rows permuted (§3), norms and biases in F32 and every
// other tensor in the asked type (quantized by the reference quantizers, ops/ggml_quants).
// A tensor whose rows do not fill whole blocks of that type falls back to F16 and is
// reported, where llama-quantize gives up. Written atomically (GgufWriter).
//
// Supported so far: `llama` and `qwen2` with a SentencePiece `tokenizer.model`; a BPE
// `tokenizer.json` and `exaone4` (which the shared llama.cpp cannot load) are refused with
// a message saying so.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "ops/ggml_quants.h"

namespace sp {

struct GgufExportOptions {
  GgmlType type = GgmlType::kF32;  // for 2-D weights (norms, biases, 1-D tensors: F32)
  int threads = 0;                 // quantizing each tensor's rows (0: every core); same bytes for any count
};

struct GgufExportSummary {
  std::string path;
  int tensors = 0;
  uint64_t bytes = 0;                      // of the file
  std::vector<std::string> fallbacks;      // "blk.0.ffn_down.weight: 172 columns, not whole Q4_0 blocks: F16"
};

absl::StatusOr<GgufExportSummary> export_gguf(const std::string& model_dir, const std::string& out_path,
                                              const GgufExportOptions& options);

}  // namespace sp
