// Durable file operations: writes that become visible only when complete.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "common/status.h"

namespace sp {

// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync,
// rename over `path`, fsync of the folder. On error nothing is left behind.
absl::Status write_file_atomic(const std::string& path, std::span<const uint8_t> bytes);
absl::Status write_file_atomic(const std::string& path, std::string_view text);

// Writes `bytes` to a new file at `path` without syncing (scratch data that need not
// survive a crash).
absl::Status write_file(const std::string& path, std::span<const uint8_t> bytes);

// Reads a whole (small) file into a string. NOT_FOUND if missing.
absl::StatusOr<std::string> read_file(const std::string& path);

// fsyncs a folder, so that renames and creations inside it are durable.
absl::Status fsync_dir(const std::string& dir);

// Copies a regular file (contents only) to `dst` and fsyncs it; `dst` must not exist.
absl::Status copy_file_synced(const std::string& src, const std::string& dst);

// A test hook, passed in through options: a budget of bytes after which writes through
// the files that carry it fail with ENOSPC, as on a disk that fills up.
class WriteBudget {
 public:
  explicit WriteBudget(uint64_t bytes) : left_(static_cast<int64_t>(bytes)) {}
  // False once `n` more bytes would overdraw the budget.
  bool take(uint64_t n) { return left_.fetch_sub(static_cast<int64_t>(n)) >= static_cast<int64_t>(n); }

 private:
  std::atomic<int64_t> left_;
};

// An open file written with pwrite at explicit offsets, preallocated to `size` bytes.
// Used to fill a file whose layout is known in advance, in any order.
class PositionalFile {
 public:
  static absl::StatusOr<PositionalFile> create(const std::string& path, uint64_t size,
                                               std::shared_ptr<WriteBudget> budget = nullptr);
  PositionalFile() = default;
  PositionalFile(PositionalFile&& o) noexcept;
  PositionalFile& operator=(PositionalFile&& o) noexcept;
  PositionalFile(const PositionalFile&) = delete;
  PositionalFile& operator=(const PositionalFile&) = delete;
  ~PositionalFile();

  absl::Status write_at(uint64_t offset, std::span<const uint8_t> bytes);
  // Starts writing `len` bytes at `offset` back to disk without waiting (Linux'
  // sync_file_range), so that the fsync at the end has little left to do. Best effort.
  void start_writeback(uint64_t offset, uint64_t len);
  // Cuts (or extends) the file to `size` bytes.
  absl::Status truncate(uint64_t size);
  // fsync + close. After this the object is empty.
  absl::Status sync_and_close();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  std::shared_ptr<WriteBudget> budget_;
};

}  // namespace sp
