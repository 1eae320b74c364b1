// Typed tables over the state store: each record kind in its own table, keyed by its id,
// written into batches and loaded whole at recovery.
#pragma once

#include <string>
#include <vector>

#include "coordinator/state_store.h"
#include "fmt/format.h"
#include "shardpress.pb.h"

namespace sp {

template <typename Record>
class RecordTable {
 public:
  explicit constexpr RecordTable(Table t) : table_(t) {}
  void put(StateStore::Batch& b, const Record& r) const {
    std::string v;
    r.SerializeToString(&v);
    b.put(table_, r.id(), v);
  }
  void del(StateStore::Batch& b, std::string_view id) const { b.del(table_, id); }
  // Every record (whose key starts with `prefix`); DATA_LOSS naming the first corrupt one.
  absl::StatusOr<std::vector<Record>> load(const StateStore& s, std::string_view prefix = "") const {
    std::vector<Record> out;
    absl::Status bad;
    SP_RETURN_IF_ERROR(s.scan(table_, prefix, [&](std::string_view k, std::string_view v) {
      Record r;
      if (!r.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
        bad = absl::DataLossError(fmt::format("state store: {} record {} is corrupt", kTableNames[static_cast<int>(table_)], k));
        return false;
      }
      out.push_back(std::move(r));
      return true;
    }));
    SP_RETURN_IF_ERROR(bad);
    return out;
  }

 private:
  Table table_;
};

inline constexpr RecordTable<shardpress::v1::JobRecord> kJobTable{Table::kJobs};
inline constexpr RecordTable<shardpress::v1::TaskRecord> kTaskTable{Table::kTasks};
inline constexpr RecordTable<shardpress::v1::WorkerRecord> kWorkerTable{Table::kWorkers};

// Table::kMeta: the next job sequence number (ids are never given out twice).
inline constexpr char kNextSeqKey[] = "next_job_seq";
// Table::kMeta: an original model's evaluation (EvalResult), by original_eval_cache_key.
inline constexpr char kEvalCachePrefix[] = "eval_cache/";
// Table::kMeta: an original model's multiple-choice score (ChoiceScore), by the same kind of key.
inline constexpr char kChoiceCachePrefix[] = "choice_cache/";

// A task's name within its job: "job-0001/layer.3" -> "layer.3".
inline std::string task_name(const shardpress::v1::TaskRecord& t) { return t.id().substr(t.id().rfind('/') + 1); }

// Events are keyed by job, then time, then a counter: "job-0001/0001700000000123-00000042".
inline std::string event_key(const std::string& job_id, int64_t time_ms, uint64_t counter) {
  return fmt::format("{}/{:013d}-{:08d}", job_id, time_ms, counter);
}

}  // namespace sp
