// safetensors: reading (memory-mapped, zero-copy, validated) one file.
//
// File layout: u64 little-endian header length N, N bytes of UTF-8 JSON, then the data
// section. Every header is validated before any byte is trusted: the length bound, the
// JSON shape, known dtypes, shape x itemsize = byte length, offsets inside the data
// section, no overlaps or holes, unique names. Every error names the file and the tensor.
//
// Thread-safety: a SafetensorsFile is immutable after open(); concurrent reads are safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/mapped_file.h"
#include "common/status.h"

namespace sp {

// Largest header accepted (the reference implementation's limit).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets relative to the start of the data section
  uint64_t end = 0;

  uint64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// A zero-copy view of one tensor's bytes (little-endian, row-major).
struct TensorView {
  const TensorInfo* info = nullptr;
  std::span<const uint8_t> bytes;

  const std::string& name() const { return info->name; }
  DType dtype() const { return info->dtype; }
  const std::vector<int64_t>& shape() const { return info->shape; }
  uint64_t numel() const { return info->numel(); }
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // sorted by begin offset
  std::map<std::string, std::string> metadata;
};

// Parses and validates a header's JSON text against a data section of `data_len` bytes.
// `label` (usually the file path) starts every error message. Pure: no I/O.
absl::StatusOr<SafetensorsHeader> parse_safetensors_header(std::string_view json_text,
                                                           uint64_t data_len,
                                                           std::string_view label);

class SafetensorsFile {
 public:
  // Maps and validates `path`. INVALID_ARGUMENT/DATA_LOSS on a malformed file.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> open(const std::string& path);

  const std::string& path() const { return file_.path(); }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  // Null when absent.
  const TensorInfo* find(std::string_view name) const;
  TensorView view(const TensorInfo& info) const;
  // Drops the tensor's pages from the resident set (see MappedFile::release).
  void release(const TensorInfo& info) const { file_.release(view(info).bytes); }
  // Absolute file offset of the data section (8 + header length): a tensor's bytes are
  // at data_offset() + begin in the file.
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return file_.size(); }

 private:
  SafetensorsFile() = default;
  MappedFile file_;
  SafetensorsHeader header_;
  std::map<std::string, size_t, std::less<>> by_name_;
  uint64_t data_offset_ = 0;
};

}  // namespace sp
