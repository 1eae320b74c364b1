// The coordinator's durable state, behind a small interface: tables of records (one
// column family each in RocksDB), written in atomic batches. Two backends: RocksDB
// (coordinator/rocksdb_store.h, the daemon's) and an in-memory one for tests
// (coordinator/memory_store.h) that can be told to fail a chosen commit.
//
// Every state change is one Batch; batches that acknowledge something to a client are
// synced (WAL fsync) before the reply.
//
// Thread-safety: implementations are safe to call concurrently.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace sp {

// kMeta: coordinator-wide values (the next job number). kBlobOwners: who holds each blob
// ("<digest>/<owner>" -> "").
enum class Table { kJobs = 0, kTasks, kWorkers, kEvents, kBlobs, kMeta, kBlobOwners };
inline constexpr int kTableCount = 7;
inline constexpr const char* kTableNames[kTableCount] = {"jobs", "tasks", "workers", "events",
                                                         "blobs", "meta", "blob_owners"};

class StateStore {
 public:
  class Batch {
   public:
    enum class Op { kPut, kDelete, kDeleteRange };
    struct Entry {
      Table table;
      Op op;
      std::string key;
      std::string value;  // kPut: the value; kDeleteRange: the end key (exclusive)
    };
    void put(Table t, std::string_view key, std::string_view value) {
      entries_.push_back({t, Op::kPut, std::string(key), std::string(value)});
    }
    void del(Table t, std::string_view key) { entries_.push_back({t, Op::kDelete, std::string(key), {}}); }
    // Every key in [begin, end).
    void del_range(Table t, std::string_view begin, std::string_view end) {
      entries_.push_back({t, Op::kDeleteRange, std::string(begin), std::string(end)});
    }
    size_t count() const { return entries_.size(); }
    uint64_t bytes() const {
      uint64_t n = 0;
      for (const auto& e : entries_) n += e.key.size() + e.value.size();
      return n;
    }
    const std::vector<Entry>& entries() const { return entries_; }
    void clear() { entries_.clear(); }

   private:
    std::vector<Entry> entries_;
  };

  virtual ~StateStore() = default;

  // Applies the batch atomically; `sync` makes it durable before returning. On success the
  // batch is cleared; on failure nothing of it is applied.
  virtual absl::Status commit(Batch& batch, bool sync) = 0;
  // Bulk bytes (blob chunks), outside batches: logged (durable with the next synced
  // commit) or unlogged (a copy that recovery re-creates if a crash loses it).
  virtual absl::Status put(Table t, std::string_view key, std::string_view value) = 0;
  virtual absl::Status put_unlogged(Table t, std::string_view key, std::string_view value) = 0;
  virtual absl::StatusOr<std::optional<std::string>> get(Table t, std::string_view key) const = 0;
  // Calls fn(key, value) for every key starting with `prefix`, in key order, until it
  // returns false.
  virtual absl::Status scan(Table t, std::string_view prefix,
                            const std::function<bool(std::string_view, std::string_view)>& fn) const = 0;
  // Makes every unlogged write so far durable (RocksDB: flushes the blobs' memtable into
  // synced files). Callers commit a record that refers to unlogged bytes only after it.
  virtual absl::Status persist_unlogged() { return absl::OkStatus(); }
  // Gives the space of deleted data back to the filesystem (compaction, blob garbage
  // collection); a no-op where there is nothing to reclaim.
  virtual absl::Status reclaim() { return absl::OkStatus(); }
};

}  // namespace sp
