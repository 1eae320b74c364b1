// The jobs the coordinator knows, by id and by name, and the number the next one gets.
// It holds records and answers questions; it changes only through put() and erase(),
// which the coordinator calls after the batch that records the change is durable.
//
// Thread-safety: not thread-safe; used under the coordinator's mutex.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "proto/job_state.h"
#include "shardpress.pb.h"

namespace sp {

class JobRegistry {
 public:
  // The job with id `ref`, or the one named `ref`: NOT_FOUND, or FAILED_PRECONDITION
  // listing the ids when several share the name (state from before names were unique).
  absl::StatusOr<const shardpress::v1::JobRecord*> find(const std::string& ref) const;
  const shardpress::v1::JobRecord* get(const std::string& id) const;
  // ALREADY_EXISTS when a job has this name; FAILED_PRECONDITION when an unfinished job
  // writes to `output_dir` (empty: an evaluation, which writes nothing).
  absl::Status check_new(const std::string& name, const std::string& output_dir) const;
  // Jobs in submission order.
  std::vector<const shardpress::v1::JobRecord*> in_order() const;
  // The job the runner works on: the oldest running or assembling one, else the oldest queued
  // (evaluation jobs of a compression job first).
  const shardpress::v1::JobRecord* next_to_run() const;

  uint64_t next_seq() const { return next_seq_; }
  void set_next_seq(uint64_t seq) { next_seq_ = std::max(next_seq_, seq); }

  void put(const shardpress::v1::JobRecord& j);
  void erase(const std::string& id) { jobs_.erase(id); }
  size_t size() const { return jobs_.size(); }

 private:
  std::map<std::string, shardpress::v1::JobRecord> jobs_;
  uint64_t next_seq_ = 1;
};

}  // namespace sp
