// A read-only memory map of a whole file. Movable, not copyable; unmaps on destruction.
// Thread-safety: the mapping is immutable, so concurrent reads are safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "common/status.h"

namespace sp {

class MappedFile {
 public:
  // Maps `path` read-only. Errors: NOT_FOUND (missing), INVALID_ARGUMENT (not a regular
  // file), UNAVAILABLE (I/O). An empty file maps to an empty span.
  static absl::StatusOr<MappedFile> open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops the pages of `range` (a subspan of bytes()) from this process's resident set;
  // they stay in the page cache and are read back on the next access.
  void release(std::span<const uint8_t> range) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace sp
