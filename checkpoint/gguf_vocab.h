// The vocabulary of a GGUF file (../shared/docs/gguf-format.md §4), as convert_hf_to_gguf.py
// writes it: a SentencePiece `tokenizer.model` (pieces, scores, types; §4.2) or a
// byte-level BPE `tokenizer.json` (tokens, types, merges; §4.3), then the special token ids,
// the add_bos/add_eos flags and the chat template.
#pragma once

#include <string>

#include "common/status.h"
#include "formats/gguf_writer.h"
#include "formats/model_config.h"

namespace sp {

// FAILED_PRECONDITION without either file; UNIMPLEMENTED for a BPE vocabulary whose
// llama.cpp pre-tokenizer we cannot name (so far: qwen2 only) or a non-BPE tokenizer.json.
absl::Status add_gguf_vocab(const std::string& model_dir, const ModelConfig& config, GgufMetadata& md);

}  // namespace sp
