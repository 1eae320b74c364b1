// The coordinator's durable state: RocksDB with one column family per table (jobs,
// tasks, workers, events, blobs; blobs use BlobDB for large values). Every state change
// is one WriteBatch; batches that acknowledge something to a client are synced (WAL
// fsync) before the reply.
//
// Thread-safety: all methods are safe to call concurrently (RocksDB is).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class WriteBatch;
}  // namespace rocksdb

namespace sp {

// kMeta: coordinator-wide values (the next job number, so ids are never reused).
enum class Table { kJobs = 0, kTasks, kWorkers, kEvents, kBlobs, kMeta };

class StateStore {
 public:
  class Batch {
   public:
    Batch();
    ~Batch();
    void put(Table t, std::string_view key, std::string_view value);
    void del(Table t, std::string_view key);
    size_t count() const;

   private:
    friend class StateStore;
    std::vector<std::pair<Table, std::pair<std::string, std::optional<std::string>>>> ops_;
  };

  // Opens (creating if needed) the database in `dir`.
  //
  // Disk space: RocksDB (Debian's 7.8) can abort the process when a write meets a full
  // disk, so the store never lets it get there: a write that would leave less than
  // `min_free_bytes` free on the data dir's filesystem (counting what the memtables will
  // flush) is refused with RESOURCE_EXHAUSTED before RocksDB sees it. Small state
  // commits may use half of that reserve, so that a job's failure can still be recorded
  // after its bulk writes were refused.
  static absl::StatusOr<std::unique_ptr<StateStore>> open(const std::string& dir, uint64_t min_free_bytes = 0);
  ~StateStore();

  // Applies the batch atomically; `sync` fsyncs the WAL first (durable on return).
  absl::Status commit(Batch& batch, bool sync);
  absl::Status put(Table t, std::string_view key, std::string_view value, bool sync);
  // Writes without the WAL: bulk bytes (imported blob chunks) that become durable only
  // when RocksDB flushes them; a crash may lose them.
  absl::Status put_unlogged(Table t, std::string_view key, std::string_view value);
  absl::StatusOr<std::optional<std::string>> get(Table t, std::string_view key) const;
  // Calls fn(key, value) for every key starting with `prefix`, in key order, until it
  // returns false.
  absl::Status scan(Table t, std::string_view prefix,
                    const std::function<bool(std::string_view, std::string_view)>& fn) const;
  // Deletes every key in [begin, end).
  absl::Status delete_range(Table t, std::string_view begin, std::string_view end);

 private:
  StateStore() = default;
  rocksdb::ColumnFamilyHandle* cf(Table t) const;
  // RESOURCE_EXHAUSTED when writing `incoming` bytes would leave less than `reserve` free.
  absl::Status check_room(uint64_t incoming, uint64_t reserve) const;
  std::string dir_;
  uint64_t min_free_bytes_ = 0;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
};

}  // namespace sp
