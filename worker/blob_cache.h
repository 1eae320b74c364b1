// The worker's bounded, content-addressed disk cache of blobs (DIR/<digest>). Files
// appear whole (temp file + rename) and only if their bytes match the digest; reading
// re-checks the digest. Beyond `capacity` bytes the least recently used files go.
//
// Thread-safety: safe for concurrent use.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include "common/mapped_file.h"
#include "common/status.h"

namespace sp {

class BlobCache {
 public:
  static absl::StatusOr<std::unique_ptr<BlobCache>> open(const std::string& dir, uint64_t capacity);

  bool contains(const std::string& digest) const;
  // Maps a cached blob after checking its digest (a corrupt file is removed: NOT_FOUND).
  absl::StatusOr<MappedFile> open_blob(const std::string& digest);

  // Receives a blob through `fill`, which calls the given writer with each piece.
  // DATA_LOSS if the bytes do not match `digest` (nothing is kept).
  absl::Status insert(const std::string& digest,
                      const std::function<absl::Status(const std::function<absl::Status(std::span<const uint8_t>)>&)>& fill);

  uint64_t used_bytes() const;

 private:
  BlobCache(std::string dir, uint64_t capacity) : dir_(std::move(dir)), capacity_(capacity) {}
  void evict_locked(uint64_t incoming);
  std::string path_of(const std::string& digest) const;
  std::string dir_;
  uint64_t capacity_;
  mutable std::mutex mu_;
};

}  // namespace sp
