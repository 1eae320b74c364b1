#include "coordinator/worker_registry.h"

#include <algorithm>

#include "fmt/format.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT

namespace {
constexpr int64_t kAliveFactor = 3;  // alive = seen within 3 heartbeat intervals
}

WorkerRecord WorkerRegistry::registration(const RegisterRequest& r) const {
  WorkerRecord w;
  auto it = workers_.find(r.worker_id());
  if (it != workers_.end()) w = it->second.record;
  w.set_id(r.worker_id());
  w.set_host(r.host());
  w.set_device(r.device());
  w.set_memory(r.memory());
  w.set_threads(r.threads());
  if (w.registered_ms() == 0) w.set_registered_ms(clock_.now_ms());
  return w;
}

void WorkerRegistry::put(const WorkerRecord& r, bool seen_now) {
  Worker& w = workers_[r.id()];
  w.record = r;
  if (seen_now) {
    w.last_seen_ms = clock_.now_ms();
    w.gone = false;
  }
}

absl::StatusOr<WorkerRegistry::Worker*> WorkerRegistry::seen(const std::string& id, double* back) {
  auto it = workers_.find(id);
  if (it == workers_.end()) return absl::FailedPreconditionError(fmt::format("worker {} is not registered", id));
  Worker& w = it->second;
  if (back) *back = w.gone ? (clock_.now_ms() - w.last_seen_ms) / 1000.0 : 0.0;
  w.gone = false;
  w.last_seen_ms = clock_.now_ms();
  return &w;
}

bool WorkerRegistry::alive(const Worker& w) const {
  return w.last_seen_ms > 0 && clock_.now_ms() - w.last_seen_ms <= kAliveFactor * heartbeat_ms_;
}

bool WorkerRegistry::lost(const std::string& id, int64_t after_ms) const {
  const Worker* w = get(id);
  return !w || silent_ms(*w) > std::max(after_ms, kAliveFactor * heartbeat_ms_);
}

void WorkerRegistry::note_has(const std::string& id, const std::string& digest) {
  auto it = workers_.find(id);
  if (it != workers_.end()) it->second.has.insert(digest);
}

std::vector<const WorkerRegistry::Worker*> WorkerRegistry::newly_gone() {
  std::vector<const Worker*> out;
  for (auto& [id, w] : workers_)
    if (!w.gone && w.last_seen_ms > 0 && !alive(w)) {
      w.gone = true;
      out.push_back(&w);
    }
  return out;
}

int64_t WorkerRegistry::silent_ms(const Worker& w) const {
  return clock_.now_ms() - std::max(w.last_seen_ms, started_ms_);
}

std::vector<std::string> WorkerRegistry::forgettable() const {
  std::vector<std::string> out;
  if (forget_after_ms_ <= 0) return out;
  for (const auto& [id, w] : workers_)
    if (!alive(w) && silent_ms(w) >= forget_after_ms_) out.push_back(id);
  return out;
}

const WorkerRegistry::Worker* WorkerRegistry::get(const std::string& id) const {
  auto it = workers_.find(id);
  return it == workers_.end() ? nullptr : &it->second;
}

}  // namespace sp
