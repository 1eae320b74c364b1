// What a job imports into the blob store: an original Hugging Face model read in place
// (workers that see the file may read the same bytes directly), or, for an evaluation
// job, a shardpress NF4 checkpoint decoded to float32 one tensor at a time. Every file
// must lie inside the given root (symlinks followed), checked before it is opened.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "checkpoint/gguf_model.h"
#include "checkpoint/verify.h"
#include "common/status.h"
#include "formats/model.h"

namespace sp {

class ImportSource {
 public:
  // `allow_checkpoint`: a bitsandbytes checkpoint or a GGUF file is accepted (decoded)
  // instead of refused.
  static absl::StatusOr<std::unique_ptr<ImportSource>> open(const std::string& dir, const std::string& model_root,
                                                            bool allow_checkpoint);

  const ModelDescription& desc() const;

  struct Tensor {
    std::span<const uint8_t> bytes;  // valid until the next read()
    DType dtype = DType::kF32;
    std::string file;                // set when the bytes are the source file's own
    uint64_t offset = 0;
  };
  absl::StatusOr<Tensor> read(const std::string& name);
  // The bytes of `name` are no longer needed (drops them from memory).
  void release(const std::string& name);

 private:
  ImportSource() = default;
  std::unique_ptr<Model> model_;
  std::unique_ptr<CheckpointDecoder> decoder_;
  std::unique_ptr<GgufModel> gguf_;
  std::vector<float> scratch_;
};

// True when DIR/config.json (inside `root`) declares a quantization_config: a compressed
// checkpoint.
bool is_quantized_checkpoint(const std::string& dir, const std::string& root = kAnyRoot);

}  // namespace sp
