// Writes a complete Hugging Face checkpoint folder atomically: safetensors shards (via
// SafetensorsWriter), config.json (with bitsandbytes `quantization_config` when the
// weights are NF4), the tokenizer and generation files of the source model, and
// `shardpress_manifest.json` with a digest of every tensor and file. Everything goes to a
// hidden sibling folder that is fsynced and renamed to the output path at the end, so a
// reader never sees half a checkpoint; on failure or destruction before finish() the
// partial folder is removed.
//
// Thread-safety: not thread-safe; use from one thread.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/output_sink.h"
#include "common/status.h"
#include "formats/bnb_format.h"
#include "formats/safetensors_writer.h"
#include "nlohmann/json.hpp"

namespace sp {

inline constexpr const char* kManifestName = "shardpress_manifest.json";
inline constexpr const char* kManifestFormat = "shardpress-manifest/1";

// Tokenizer, chat-template and generation files copied from the source model.
bool is_tokenizer_or_generation_file(std::string_view file_name);

struct AssembleOptions {
  std::string source_dir;                   // model folder to copy tokenizer files from
  nlohmann::ordered_json config;            // the source config.json, as read
  std::optional<Nf4Settings> quantization;  // adds quantization_config when set
  uint64_t max_shard_bytes = 5'000'000'000ull;
  nlohmann::ordered_json provenance;        // stored in the manifest as "source"
  nlohmann::ordered_json compression;       // stored as "compression" (checkpoint/compression_record.h)
  bool replace_existing = false;            // swap out an existing output at finish()
  uint64_t fail_writes_after_bytes = 0;     // test hook: tensor writes fail with ENOSPC after this many bytes
};

class CheckpointAssembler : public OutputSink {
 public:
  // FAILED_PRECONDITION if `out_dir` exists already, unless options.replace_existing.
  // Only tokenizer/generation files whose real path lies inside source_dir are copied.
  static absl::StatusOr<std::unique_ptr<CheckpointAssembler>> create(const std::string& out_dir,
                                                                    std::vector<TensorGroup> groups,
                                                                    AssembleOptions options);
  ~CheckpointAssembler() override;

  // Writes one declared tensor (any order, each once). `known_digest`: the bytes' digest
  // when the caller has just checked it (blob reads do), to skip hashing them again.
  absl::Status write(std::string_view name, std::span<const uint8_t> bytes, std::string known_digest = "") override;
  // Completes and publishes the folder at `out_dir`.
  absl::Status finish() override;

  std::vector<std::string> shard_names() const { return writer_->shard_names(); }

 private:
  CheckpointAssembler() = default;
  std::string out_dir_;
  std::string partial_dir_;
  AssembleOptions options_;
  std::unique_ptr<SafetensorsWriter> writer_;
  std::map<std::string, std::string> digests_;  // tensor -> digest
  bool finished_ = false;
};

}  // namespace sp
