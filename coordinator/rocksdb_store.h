// The state store on RocksDB: one column family per table; the blobs table uses
// integrated BlobDB (large values in blob files, garbage-collected as compaction runs).
//
// Disk space: RocksDB (Debian's 7.8) can abort the process when a write meets a full
// disk, so this store never lets it get there: a write that would leave less than
// `min_free_bytes` free on the data dir's filesystem (counting what the memtables will
// flush) is refused with RESOURCE_EXHAUSTED before RocksDB sees it. Batches may use half
// of that reserve, so that a job's failure can still be recorded after its bulk writes
// were refused.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "coordinator/state_store.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace sp {

class RocksStateStore final : public StateStore {
 public:
  // Opens (creating if needed) the database in `dir`.
  static absl::StatusOr<std::unique_ptr<RocksStateStore>> open(const std::string& dir, uint64_t min_free_bytes = 0);
  ~RocksStateStore() override;

  absl::Status commit(Batch& batch, bool sync) override;
  absl::Status put(Table t, std::string_view key, std::string_view value) override;
  absl::Status put_unlogged(Table t, std::string_view key, std::string_view value) override;
  absl::Status persist_unlogged() override;
  absl::StatusOr<std::optional<std::string>> get(Table t, std::string_view key) const override;
  absl::Status scan(Table t, std::string_view prefix,
                    const std::function<bool(std::string_view, std::string_view)>& fn) const override;
  absl::Status reclaim() override;

 private:
  RocksStateStore() = default;
  rocksdb::ColumnFamilyHandle* cf(Table t) const;
  // RESOURCE_EXHAUSTED when writing `incoming` bytes would leave less than `reserve` free.
  absl::Status check_room(uint64_t incoming, uint64_t reserve) const;
  std::string dir_;
  uint64_t min_free_bytes_ = 0;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
};

}  // namespace sp
