// An exclusive claim on a folder that one process works in (a coordinator's data dir, a
// worker's cache dir), held while the object lives: flock(2) on DIR/.lock, which the
// kernel drops when the process ends, kill -9 included, so a stale lock never blocks a
// restart. The holder writes who it is into the lock file, so a second process can name
// the one it met ("shardpress-coordinator, pid 4321 on lab1, listening on 127.0.0.1:7070").
//
// Thread-safety: not thread-safe; one owner.
#pragma once

#include <string>

#include "common/status.h"

namespace sp {

class DirLock {
 public:
  // Creates `dir` if needed and claims it for `who`. FAILED_PRECONDITION naming the
  // holder when another process has it; INVALID_ARGUMENT when `dir` is not a folder.
  static absl::StatusOr<DirLock> acquire(const std::string& dir, const std::string& who);

  DirLock() = default;
  DirLock(DirLock&& o) noexcept;
  DirLock& operator=(DirLock&& o) noexcept;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock();

  // Replaces the description a second process reads (e.g. once the address is known).
  void describe(const std::string& who);

 private:
  int fd_ = -1;
};

}  // namespace sp
