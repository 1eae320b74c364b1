#include "coordinator/job_registry.h"

#include <algorithm>

#include "fmt/format.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT

absl::StatusOr<const JobRecord*> JobRegistry::find(const std::string& ref) const {
  auto it = jobs_.find(ref);
  if (it != jobs_.end()) return &it->second;
  std::vector<const JobRecord*> named;
  for (const auto& [id, j] : jobs_)
    if (j.spec().name() == ref) named.push_back(&j);
  if (named.empty()) return absl::NotFoundError(fmt::format("no job '{}'", ref));
  if (named.size() > 1) {
    std::string ids;
    for (const auto* j : named) ids += (ids.empty() ? "" : ", ") + j->id();
    return absl::FailedPreconditionError(
        fmt::format("several jobs are named '{}' ({}): give the job id instead", ref, ids));
  }
  return named[0];
}

const JobRecord* JobRegistry::get(const std::string& id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

absl::Status JobRegistry::check_new(const std::string& name, const std::string& output_dir) const {
  for (const auto& [id, j] : jobs_) {
    if (j.spec().name() == name)
      return absl::AlreadyExistsError(fmt::format(
          "a job named '{}' exists already ({}, {}): give this one another name, or resume that one", name, id,
          job_state_name(j.state())));
    if (!output_dir.empty() && !job_terminal(j.state()) && j.output_dir() == output_dir)
      return absl::FailedPreconditionError(fmt::format("job {} already writes to {}", id, output_dir));
  }
  return absl::OkStatus();
}

std::vector<const JobRecord*> JobRegistry::in_order() const {
  std::vector<const JobRecord*> v;
  for (const auto& [id, j] : jobs_) v.push_back(&j);
  std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->seq() < b->seq(); });
  return v;
}

const JobRecord* JobRegistry::next_to_run() const {
  const JobRecord *active = nullptr, *queued = nullptr;
  for (const auto& [id, j] : jobs_) {
    if ((j.state() == RUNNING || j.state() == ASSEMBLING) && (!active || j.seq() < active->seq())) active = &j;
    // The evaluation jobs of a job whose output is written go first: that job waits on them.
    auto before = [](const JobRecord& a, const JobRecord& b) {
      return std::make_pair(a.evaluates().empty(), a.seq()) < std::make_pair(b.evaluates().empty(), b.seq());
    };
    if (j.state() == QUEUED && (!queued || before(j, *queued))) queued = &j;
  }
  return active ? active : queued;
}

void JobRegistry::put(const JobRecord& j) {
  jobs_[j.id()] = j;
  set_next_seq(j.seq() + 1);
}

}  // namespace sp
