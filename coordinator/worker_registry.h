// The workers the coordinator knows: their records (persisted), when each was last seen
// and what it holds in its cache (memory only: after a restart every worker is "not seen
// yet", and liveness is measured from the coordinator's start).
//
//   alive:     seen within 3 heartbeat intervals;
//   gone:      was alive and went silent — announced once (the caller makes the event);
//   forgotten: silent for `forget_after_ms` with no lease left — dropped for good.
//
// Thread-safety: not thread-safe; used under the coordinator's mutex.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "coordinator/clock.h"
#include "shardpress.pb.h"

namespace sp {

class WorkerRegistry {
 public:
  struct Worker {
    shardpress::v1::WorkerRecord record;
    int64_t last_seen_ms = 0;   // 0: not since this coordinator started
    bool gone = false;          // went silent (announced); cleared when seen again
    std::set<std::string> has;  // digests it fetched or uploaded (scheduling affinity)
  };

  WorkerRegistry(const Clock& clock, int64_t heartbeat_ms, int64_t forget_after_ms)
      : clock_(clock), heartbeat_ms_(heartbeat_ms), forget_after_ms_(forget_after_ms), started_ms_(clock.now_ms()) {}

  // The record a (re)registering worker gets (a proposal: nothing changes here).
  shardpress::v1::WorkerRecord registration(const shardpress::v1::RegisterRequest& r) const;
  // Applies a record (loaded, or registered: then seen now).
  void put(const shardpress::v1::WorkerRecord& r, bool seen_now);
  void forget(const std::string& id) { workers_.erase(id); }

  // The worker, marked as seen now; FAILED_PRECONDITION if it never registered. `back`
  // is set to the seconds it had been silent when it had been announced gone.
  absl::StatusOr<Worker*> seen(const std::string& id, double* back = nullptr);
  bool alive(const Worker& w) const;
  // Unknown, or silent for more than `after_ms` and more than alive allows (a worker not
  // seen since this coordinator started counts from its start): what it keeps is out of reach.
  bool lost(const std::string& id, int64_t after_ms) const;
  void note_has(const std::string& id, const std::string& digest);

  // Workers alive before and silent now, marked gone (announce each once).
  std::vector<const Worker*> newly_gone();
  // Workers silent for forget_after_ms (counted from this coordinator's start for the
  // ones it has not seen); the caller drops those that hold no lease.
  std::vector<std::string> forgettable() const;
  int64_t silent_ms(const Worker& w) const;

  const std::map<std::string, Worker>& all() const { return workers_; }
  const Worker* get(const std::string& id) const;

 private:
  const Clock& clock_;
  int64_t heartbeat_ms_, forget_after_ms_, started_ms_;
  std::map<std::string, Worker> workers_;
};

}  // namespace sp
