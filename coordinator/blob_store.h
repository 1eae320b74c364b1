// Content-addressed blobs (tensor bytes) in the state store's `blobs` table, cut into
// chunks of at most kBlobChunkBytes (4 MiB). A blob is complete once its header key exists;
// its digest (XXH3-128 of the bytes) is checked on every read.
//
// Keys: "h/<digest>" -> size (decimal); "c/<digest>/<index, 8 digits>" -> chunk bytes.
// Thread-safety: safe for concurrent use; concurrent writers of the same digest write
// identical bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/digest.h"
#include "coordinator/state_store.h"

namespace sp {

inline constexpr size_t kBlobChunkBytes = 4 << 20;

class BlobStore {
 public:
  explicit BlobStore(StateStore* store) : store_(store) {}

  // True if the blob is complete in the store.
  absl::StatusOr<bool> contains(const std::string& digest) const;
  absl::StatusOr<uint64_t> size(const std::string& digest) const;

  // Streams the blob to `sink` chunk by chunk. NOT_FOUND if absent; DATA_LOSS (after the
  // last chunk: the caller must discard what it got) if the bytes do not match the digest.
  absl::Status read(const std::string& digest,
                    const std::function<absl::Status(std::span<const uint8_t>)>& sink) const;
  absl::StatusOr<std::vector<uint8_t>> read_all(const std::string& digest) const;

  // Receives a blob in pieces; finish() checks size and digest, then makes it visible.
  // Unlogged writes skip the WAL (a re-creatable copy: the import of a model); logged
  // writes go through the WAL, so the next synced commit makes them durable (results).
  enum class Durability { kUnlogged, kLogged };

  class Writer {
   public:
    absl::Status append(std::span<const uint8_t> bytes);
    // DATA_LOSS if the bytes do not match; the chunks written are then removed.
    absl::Status finish();

   private:
    friend class BlobStore;
    Writer(BlobStore* s, std::string digest, uint64_t size, Durability d)
        : store_(s), digest_(std::move(digest)), size_(size), durability_(d) {}
    absl::Status flush_chunk();
    absl::Status write(const std::string& key, std::string_view value);
    BlobStore* store_;
    std::string digest_;
    uint64_t size_;
    Durability durability_;
    uint64_t received_ = 0;
    uint32_t chunk_index_ = 0;
    std::vector<uint8_t> pending_;
    Digester hasher_;
  };
  std::unique_ptr<Writer> begin(const std::string& digest, uint64_t size, Durability d = Durability::kLogged);

  // Stores `bytes` and returns their digest (no-op if present).
  absl::StatusOr<std::string> put(std::span<const uint8_t> bytes, Durability d = Durability::kLogged);

 private:
  StateStore* store_;
};

}  // namespace sp
