// GGUF v3, llama.cpp's model file (../shared/docs/gguf-format.md §1): magic, version 3,
// key/value metadata, tensor infos, then each tensor's bytes at 32-byte-aligned offsets in
// info order. Like SafetensorsWriter: every tensor is declared up front, so each has its
// final offset; their bytes are written in any order, straight into place, to a hidden
// temporary file beside the output that finish() fsyncs and renames (readers never see
// half a file; without finish() it is removed).
//
// Thread-safety: not thread-safe; use from one thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/status.h"

namespace sp {

inline constexpr uint32_t kGgufAlignment = 32;  // GGUF_DEFAULT_ALIGNMENT

// The key/value pairs, in the order they are added, serialized as GGUF writes them (§1.2:
// every integer llama.cpp holds in a uint32_t must be UINT32, arrays of ints INT32, ...).
class GgufMetadata {
 public:
  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_string(const std::string& key, const std::string& v);
  void add_strings(const std::string& key, const std::vector<std::string>& v);
  void add_f32s(const std::string& key, const std::vector<float>& v);
  void add_i32s(const std::string& key, const std::vector<int32_t>& v);
  void add_bools(const std::string& key, const std::vector<bool>& v);

  uint64_t count() const { return count_; }
  const std::string& bytes() const { return bytes_; }
  bool has(const std::string& key) const { return keys_.count(key) > 0; }
  const std::map<std::string, int>& key_counts() const { return keys_; }

 private:
  void key(const std::string& k, int32_t type);
  std::string bytes_;
  uint64_t count_ = 0;
  std::map<std::string, int> keys_;
};

// One tensor as GGUF describes it: `ne[0]` is the row length (the reverse of a row-major
// shape), `type` a ggml_type id, `nbytes` its size in that type.
struct GgufTensor {
  std::string name;
  std::vector<int64_t> ne;
  uint32_t type = 0;
  uint64_t nbytes = 0;
};

class GgufWriter {
 public:
  // INVALID_ARGUMENT for duplicate, empty or too long (>= 64 bytes) names, or > 4 dims.
  static absl::StatusOr<std::unique_ptr<GgufWriter>> create(const std::string& path, const GgufMetadata& metadata,
                                                            std::vector<GgufTensor> tensors);
  ~GgufWriter();  // removes the temporary file unless finish() succeeded

  // Writes all bytes of tensor `name`, each tensor once with its exact size.
  absl::Status write(std::string_view name, std::span<const uint8_t> bytes);
  // Checks that every tensor was written, fsyncs and renames the file into place.
  absl::Status finish();

 private:
  GgufWriter() = default;
  struct Slot {
    uint64_t offset = 0;  // absolute in the file
    uint64_t nbytes = 0;
    bool written = false;
  };
  std::string path_, tmp_path_;
  PositionalFile file_;
  std::map<std::string, Slot, std::less<>> slots_;
  bool finished_ = false;
};

}  // namespace sp
