#include "coordinator/memory_store.h"

namespace sp {

absl::Status MemoryStateStore::commit(Batch& batch, bool) {
  std::lock_guard lock(mu_);
  ++commits_;
  if (fail_at_ > 0 && commits_ == fail_at_)
    return absl::UnavailableError("state store: write failed (injected by the test)");
  for (const auto& e : batch.entries()) {
    auto& table = tables_[static_cast<int>(e.table)];
    switch (e.op) {
      case Batch::Op::kPut: table[e.key] = e.value; break;
      case Batch::Op::kDelete: table.erase(e.key); break;
      case Batch::Op::kDeleteRange: table.erase(table.lower_bound(e.key), table.lower_bound(e.value)); break;
    }
  }
  batch.clear();
  return absl::OkStatus();
}

absl::Status MemoryStateStore::put(Table t, std::string_view key, std::string_view value) {
  std::lock_guard lock(mu_);
  tables_[static_cast<int>(t)][std::string(key)] = std::string(value);
  return absl::OkStatus();
}

absl::Status MemoryStateStore::put_unlogged(Table t, std::string_view key, std::string_view value) {
  return put(t, key, value);
}

absl::StatusOr<std::optional<std::string>> MemoryStateStore::get(Table t, std::string_view key) const {
  std::lock_guard lock(mu_);
  const auto& table = tables_[static_cast<int>(t)];
  auto it = table.find(key);
  if (it == table.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

absl::Status MemoryStateStore::scan(Table t, std::string_view prefix,
                                    const std::function<bool(std::string_view, std::string_view)>& fn) const {
  std::vector<std::pair<std::string, std::string>> rows;  // copied: fn may write to the store
  {
    std::lock_guard lock(mu_);
    const auto& table = tables_[static_cast<int>(t)];
    for (auto it = table.lower_bound(prefix); it != table.end() && it->first.starts_with(prefix); ++it)
      rows.emplace_back(it->first, it->second);
  }
  for (const auto& [k, v] : rows)
    if (!fn(k, v)) break;
  return absl::OkStatus();
}

void MemoryStateStore::fail_commit(int n) {
  std::lock_guard lock(mu_);
  fail_at_ = n > 0 ? commits_ + n : 0;
}

int MemoryStateStore::commits() const {
  std::lock_guard lock(mu_);
  return commits_;
}

}  // namespace sp
