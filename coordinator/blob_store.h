// Content-addressed blobs (tensor bytes) in the state store's `blobs` table, cut into
// chunks of at most kBlobChunkBytes (4 MiB). A blob is complete once its header key exists;
// its digest (XXH3-128 of the bytes) is checked on every read.
//
// A model's tensors are not copied: the source is the store. An imported tensor is a
// reference (file, offset, size) to the bytes in the model's own file, read from there on
// demand and checked against the digest recorded at import; a file changed since is
// DATA_LOSS saying so (restore it and resume). Results and intermediates are stored.
//
// Lifecycle: a blob has owners — a job that imported it or keeps it as a result
// ("job-0001"), a task that will read it ("job-0001/layer.3": an intermediate). Owner
// changes go into the batch of the state change that causes them (OwnerChanges), and a
// blob left without owners is deleted in that same batch. The space comes back when the
// store reclaims it (StateStore::reclaim). Whoever adds an owner must do it with the
// blob present, under the same lock as deletions (the coordinator's), so that a blob is
// never deleted between being found present and being owned. A blob uploaded for a result
// that never comes (the task failed, or its lease was lost) has no owner: sweep_unowned()
// deletes it once it is older than a grace time.
//
// Keys: "h/<digest>" -> size (decimal); "c/<digest>/<index, 8 digits>" -> chunk bytes;
// "s/<digest>" -> "<size> <offset> <file>" (a reference into a source file);
// table blob_owners: "<digest>/<owner>" -> "".
// Thread-safety: safe for concurrent use; concurrent writers of the same digest write
// identical bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "common/digest.h"
#include "coordinator/clock.h"
#include "coordinator/state_store.h"

namespace sp {

inline constexpr size_t kBlobChunkBytes = 4 << 20;

class BlobStore {
 public:
  // `clock` dates the writes (for sweep_unowned); it must outlive the store.
  BlobStore(StateStore* store, const Clock& clock) : store_(store), clock_(clock) {}

  // True if the blob is complete in the store.
  absl::StatusOr<bool> contains(const std::string& digest) const;
  // contains(), for an upload: a blob already here counts as written now, so that it is
  // not swept before the result that names it arrives.
  absl::StatusOr<bool> refresh(const std::string& digest);
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
  // Stores `bytes` whose digest the caller computed (no-op if present).
  absl::Status put(const std::string& digest, std::span<const uint8_t> bytes, Durability d);
  // Records that `digest` is the `size` bytes at `offset` of `file` (an absolute path the
  // caller has confined), instead of storing them (no-op if the blob is present). Logged:
  // the next synced commit makes it durable.
  absl::Status put_reference(const std::string& digest, const std::string& file, uint64_t offset, uint64_t size);

  // Owners added and dropped by one state change.
  class OwnerChanges {
   public:
    void add(const std::string& digest, const std::string& owner) { adds_.insert({digest, owner}); }
    void drop(const std::string& digest, const std::string& owner) { drops_.insert({digest, owner}); }
    bool empty() const { return adds_.empty() && drops_.empty(); }

   private:
    friend class BlobStore;
    std::set<std::pair<std::string, std::string>> adds_, drops_;
  };
  // Blobs deleted by a batch: how many, and their bytes (the garbage the store holds until
  // it reclaims the space).
  struct Freed {
    size_t blobs = 0;
    uint64_t bytes = 0;
  };
  // Writes the owner changes into `b`, and the deletion of every blob they leave without
  // an owner.
  absl::StatusOr<Freed> write(const OwnerChanges& changes, StateStore::Batch& b) const;
  // Recovery: makes the owners table equal `expected` ((digest, owner) pairs, derived from
  // the records), into `b`. A blob nobody owns is not deleted here: it may be the upload of
  // a result a worker is about to send again; it counts as written now, so sweep_unowned
  // deletes it after its grace. Returns the number of blobs nobody owns.
  absl::StatusOr<size_t> reconcile(const std::set<std::pair<std::string, std::string>>& expected,
                                   StateStore::Batch& b);
  // Deletes, into `b`, every blob written (or refreshed) more than `grace_ms` ago that
  // still has no owner: outputs of tasks that failed or lost their lease after uploading.
  // Returns their digests (and bytes); call forget() with them once `b` is committed (until
  // then they are swept again next time). Call it under the lock that owner changes take.
  struct Swept {
    std::vector<std::string> digests;
    uint64_t bytes = 0;
  };
  absl::StatusOr<Swept> sweep_unowned(int64_t grace_ms, StateStore::Batch& b);
  void forget(const std::vector<std::string>& digests);
  // The owners of a blob, as committed.
  absl::StatusOr<std::vector<std::string>> owners(const std::string& digest) const;
  // Blobs in the store (stored and referenced) and the bytes stored (what the data dir
  // holds; references hold none), for reports, the reclaim policy and tests.
  absl::StatusOr<std::pair<size_t, uint64_t>> census() const;

 private:
  struct Reference {
    std::string file;
    uint64_t offset = 0, size = 0;
  };
  absl::StatusOr<std::optional<Reference>> reference(const std::string& digest) const;
  absl::Status read_reference(const std::string& digest, const Reference& ref,
                              const std::function<absl::Status(std::span<const uint8_t>)>& sink) const;
  // The bytes a deletion frees in the store (0 for a reference); NOT_FOUND if absent.
  absl::StatusOr<uint64_t> stored_size(const std::string& digest) const;
  void written(const std::string& digest);
  // The keys that delete a blob, into `b` (its header first: a reader never sees half a blob).
  static void erase(const std::string& digest, StateStore::Batch& b);

  StateStore* store_;
  const Clock& clock_;
  std::mutex written_mu_;
  std::map<std::string, int64_t> written_;  // digest -> when it was last written or refreshed
};

}  // namespace sp
