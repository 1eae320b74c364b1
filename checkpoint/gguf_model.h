// A llama/qwen2/exaone4 model and its GGUF file, both ways (../shared/docs/gguf-format.md §2-§3):
// llama.cpp's name for each Hugging Face tensor, Llama's Q/K row order, and a GGUF file
// read back as the Hugging Face model it holds — the config rebuilt from its metadata (and
// checked by the same parser as any config.json; a shardpress file carries its config.json
// whole when the keys cannot say it: exaone4, Llama-3 RoPE), every tensor under its Hugging Face name,
// dequantized to float32 by the format table's reference decoders, Q/K rows put back.
// `verify`, `eval` and `inspect` read GGUF files through this.
//
// Thread-safety: GgufModel is immutable after open(); decode() may run concurrently.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "formats/gguf_names.h"
#include "formats/gguf_reader.h"
#include "formats/model_layout.h"

namespace sp {

// True when `path` is a regular file that starts with the GGUF magic.
bool is_gguf_file(const std::string& path);

class GgufModel {
 public:
  // INVALID_ARGUMENT naming the file for a damaged container, an architecture other than
  // llama/qwen2 (or a shardpress file's), metadata the config cannot be rebuilt from, or tensors missing, unknown,
  // of a type we cannot decode or of the wrong shape (every such problem listed).
  static absl::StatusOr<std::unique_ptr<GgufModel>> open(const std::string& path);

  const ModelDescription& desc() const { return desc_; }  // every tensor F32
  const GgufFile& file() const { return file_; }
  // The GGUF entry of a Hugging Face tensor name.
  const GgufTensorEntry& entry(const std::string& name) const;
  // general.file_type's name ("Q4_K_M"), or the number when it is not one we write.
  std::string file_type_name() const;
  // Dequantized float32 in the Hugging Face layout (rows x cols as in desc()).
  std::vector<float> decode(const std::string& name) const;
  // The stored bytes of a tensor.
  std::span<const uint8_t> bytes(const std::string& name) const;

 private:
  GgufModel() = default;
  GgufFile file_;
  ModelDescription desc_;
  std::map<std::string, const GgufTensorEntry*> entries_;  // HF name -> entry
};

}  // namespace sp
