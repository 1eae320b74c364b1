// The state store in memory, for tests of the coordinator's core without a disk: the same
// tables and batches as RocksDB, and a way to make a chosen commit fail, so that a test can
// check that a failed commit leaves the coordinator's memory as a restart would find it.
// It outlives the coordinators opened on it (a "restart" opens a new one on the same store).
//
// Thread-safety: safe for concurrent use.
#pragma once

#include <map>
#include <mutex>

#include "coordinator/state_store.h"

namespace sp {

class MemoryStateStore final : public StateStore {
 public:
  absl::Status commit(Batch& batch, bool sync) override;
  absl::Status put(Table t, std::string_view key, std::string_view value) override;
  absl::Status put_unlogged(Table t, std::string_view key, std::string_view value) override;
  absl::StatusOr<std::optional<std::string>> get(Table t, std::string_view key) const override;
  absl::Status scan(Table t, std::string_view prefix,
                    const std::function<bool(std::string_view, std::string_view)>& fn) const override;

  // The `n`-th commit from now (1: the next) fails with UNAVAILABLE and applies nothing;
  // 0: none fails.
  void fail_commit(int n);
  // Commits made so far (successful or not): tests count them to fail each in turn.
  int commits() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string, std::less<>> tables_[kTableCount];
  int commits_ = 0;
  int fail_at_ = 0;
};

}  // namespace sp
