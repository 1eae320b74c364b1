// The weight files of one Hugging Face model folder: a single `model.safetensors`, or
// shards listed by `model.safetensors.index.json`. All files are mapped and validated on
// open; the index must name only files that exist in the folder, every tensor it names
// must be in that file, and every tensor of every shard must be in the index once.
//
// Thread-safety: immutable after open(); concurrent reads are safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/confined_path.h"
#include "formats/safetensors.h"

namespace sp {

inline constexpr const char* kSafetensorsSingleName = "model.safetensors";
inline constexpr const char* kSafetensorsIndexName = "model.safetensors.index.json";

// Where one tensor lives.
struct TensorRef {
  const SafetensorsFile* file = nullptr;
  const TensorInfo* info = nullptr;

  TensorView view() const { return file->view(*info); }
  // Drops this tensor's pages from the resident set (after a one-time read).
  void release() const;
  // Absolute byte offset in `file->path()`: a worker that sees the same file can read
  // the bytes directly.
  uint64_t file_offset() const { return file->data_offset() + info->begin; }
};

// Parses and checks model.safetensors.index.json text: weight_map entries must be plain
// file names in the folder. Returns tensor -> file name. Pure: no I/O.
absl::StatusOr<std::map<std::string, std::string>> parse_safetensors_index(std::string_view text,
                                                                           const std::string& label);

class ModelFiles {
 public:
  // Every file (the index, each weight file) is resolved and checked to lie inside
  // `root` before it is opened (common/confined_path.h).
  static absl::StatusOr<ModelFiles> open(const std::string& dir, const std::string& root = kAnyRoot);

  const std::string& dir() const { return dir_; }
  bool sharded() const { return sharded_; }
  // Null when absent.
  const TensorRef* find(std::string_view name) const;
  // Every tensor, ordered by name.
  const std::map<std::string, TensorRef, std::less<>>& tensors() const { return tensors_; }
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  std::string dir_;
  bool sharded_ = false;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, TensorRef, std::less<>> tensors_;
};

}  // namespace sp
