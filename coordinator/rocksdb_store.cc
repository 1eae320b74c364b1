#include "coordinator/rocksdb_store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <sys/statvfs.h>

#include <filesystem>

#include "common/byte_size.h"

#include "fmt/format.h"

namespace sp {
namespace {

absl::Status from_rocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = fmt::format("state store: {}: {}", what, s.ToString());
  if (s.IsNoSpace()) return absl::ResourceExhaustedError(msg);
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsIOError()) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

}  // namespace

absl::StatusOr<std::unique_ptr<RocksStateStore>> RocksStateStore::open(const std::string& dir, uint64_t min_free_bytes) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  rocksdb::DBOptions db_opts;
  db_opts.create_if_missing = true;
  db_opts.create_missing_column_families = true;
  db_opts.max_background_jobs = 2;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  cfs.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
  for (const char* name : kTableNames) {
    rocksdb::ColumnFamilyOptions o;
    if (std::string_view(name) == "blobs") {
      o.enable_blob_files = true;  // integrated BlobDB: chunk values live in blob files
      o.min_blob_size = 4096;
      o.write_buffer_size = 64 << 20;  // memtables count in the coordinator's RSS
      o.blob_file_size = 256ull << 20;
      // Ordinary compactions do not rewrite live blobs (that would copy every result again
      // and again while jobs run); a blob file goes once all it holds is deleted. reclaim()
      // turns garbage collection on for its one full compaction.
      o.enable_blob_garbage_collection = false;
    }
    cfs.emplace_back(name, o);
  }
  std::unique_ptr<RocksStateStore> s(new RocksStateStore());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  auto st = rocksdb::DB::Open(db_opts, dir, cfs, &handles, &db);
  if (!st.ok()) return from_rocks(st, fmt::format("cannot open {}", dir));
  s->db_.reset(db);
  s->handles_ = std::move(handles);
  s->dir_ = dir;
  s->min_free_bytes_ = min_free_bytes;
  return s;
}

absl::Status RocksStateStore::check_room(uint64_t incoming, uint64_t reserve) const {
  if (min_free_bytes_ == 0) return absl::OkStatus();
  struct statvfs fs {};
  if (::statvfs(dir_.c_str(), &fs) != 0) return absl::OkStatus();  // cannot tell: let RocksDB try
  const uint64_t avail = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  uint64_t memtables = 0;  // written to disk by the next flush
  db_->GetAggregatedIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &memtables);
  if (avail >= memtables + incoming + reserve) return absl::OkStatus();
  return absl::ResourceExhaustedError(fmt::format(
      "state store: no space left for {} more: the data dir {} has {} free (with {} still in memory), and shardpress "
      "keeps {} free (--min-free-space); free some space, then resume the job",
      format_bytes(incoming), dir_, format_bytes(avail), format_bytes(memtables), format_bytes(reserve)));
}

RocksStateStore::~RocksStateStore() {
  if (db_) {
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
    db_->Close();
  }
}

rocksdb::ColumnFamilyHandle* RocksStateStore::cf(Table t) const { return handles_[static_cast<size_t>(t) + 1]; }

absl::Status RocksStateStore::commit(Batch& batch, bool sync) {
  SP_RETURN_IF_ERROR(check_room(batch.bytes(), min_free_bytes_ / 2));
  rocksdb::WriteBatch wb;
  for (const auto& e : batch.entries()) {
    rocksdb::Status st;
    switch (e.op) {
      case Batch::Op::kPut: st = wb.Put(cf(e.table), e.key, e.value); break;
      case Batch::Op::kDelete: st = wb.Delete(cf(e.table), e.key); break;
      case Batch::Op::kDeleteRange: st = wb.DeleteRange(cf(e.table), e.key, e.value); break;
    }
    if (!st.ok()) return from_rocks(st, "batch");
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  SP_RETURN_IF_ERROR(from_rocks(db_->Write(wo, &wb), "write"));
  batch.clear();
  return absl::OkStatus();
}

absl::Status RocksStateStore::put(Table t, std::string_view key, std::string_view value) {
  SP_RETURN_IF_ERROR(check_room(key.size() + value.size(), min_free_bytes_));
  return from_rocks(db_->Put(rocksdb::WriteOptions(), cf(t), rocksdb::Slice(key.data(), key.size()),
                             rocksdb::Slice(value.data(), value.size())),
                    "put");
}

absl::Status RocksStateStore::put_unlogged(Table t, std::string_view key, std::string_view value) {
  SP_RETURN_IF_ERROR(check_room(key.size() + value.size(), min_free_bytes_));
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  return from_rocks(db_->Put(wo, cf(t), rocksdb::Slice(key.data(), key.size()),
                             rocksdb::Slice(value.data(), value.size())),
                    "put");
}

absl::Status RocksStateStore::persist_unlogged() {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  return from_rocks(db_->Flush(fo, cf(Table::kBlobs)), "flush");
}

absl::StatusOr<std::optional<std::string>> RocksStateStore::get(Table t, std::string_view key) const {
  std::string value;
  auto st = db_->Get(rocksdb::ReadOptions(), cf(t), rocksdb::Slice(key.data(), key.size()), &value);
  if (st.IsNotFound()) return std::optional<std::string>();
  SP_RETURN_IF_ERROR(from_rocks(st, "get"));
  return std::optional<std::string>(std::move(value));
}

absl::Status RocksStateStore::scan(Table t, std::string_view prefix,
                              const std::function<bool(std::string_view, std::string_view)>& fn) const {
  rocksdb::ReadOptions ro;
  if (t == Table::kBlobs) {
    ro.verify_checksums = false;  // blob readers check the content digest themselves
    ro.fill_cache = false;        // streamed once: keep the block cache for metadata
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(t)));
  for (it->Seek(rocksdb::Slice(prefix.data(), prefix.size())); it->Valid(); it->Next()) {
    const auto k = it->key();
    if (!k.starts_with(rocksdb::Slice(prefix.data(), prefix.size()))) break;
    if (!fn(std::string_view(k.data(), k.size()), std::string_view(it->value().data(), it->value().size()))) break;
  }
  return from_rocks(it->status(), "scan");
}

absl::Status RocksStateStore::reclaim() {
  // Compaction drops deleted keys; with blob garbage collection it also rewrites the blob
  // files that hold deleted chunks, so the space really comes back.
  rocksdb::CompactRangeOptions o;
  o.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  rocksdb::ColumnFamilyHandle* blobs = cf(Table::kBlobs);
  SP_RETURN_IF_ERROR(from_rocks(db_->SetOptions(blobs, {{"enable_blob_garbage_collection", "true"},
                                                        {"blob_garbage_collection_age_cutoff", "1.0"}}),
                                "enabling blob garbage collection"));
  absl::Status st;
  for (int t = 0; t < kTableCount && st.ok(); ++t)
    st = from_rocks(db_->CompactRange(o, cf(static_cast<Table>(t)), nullptr, nullptr), "compaction");
  const absl::Status off =
      from_rocks(db_->SetOptions(blobs, {{"enable_blob_garbage_collection", "false"}}), "disabling blob garbage collection");
  SP_RETURN_IF_ERROR(st);
  return off;
}

}  // namespace sp
