// Which blobs a job keeps alive, derived from its records — the one rule behind every
// blob's owners (DESIGN.md "State and recovery"):
//
//   - what it imported (owner: the job), while it may still need it: after it succeeds
//     only the shards that go to the output as they are;
//   - its tasks' results (owner: the job): what assembly — and re-assembly — reads;
//   - dense calibration statistics a task returned for other jobs (shared_statistics.h;
//     owner: the job): jobs run one at a time, so the jobs that take them start after it
//     has finished; they go when it is deleted;
//   - intermediate activations (owner: each task that will read them, "job-0001/layer.4"),
//     until that task is DONE — except those kept on the worker that made them
//     (calibrate.checkpoint_every), which never reach the store.
//
// An evaluation job that succeeded keeps nothing (its result is in its record). A
// deleted job keeps nothing. The coordinator writes the difference between a job's owners
// before and after each change into that change's batch; blobs left without an owner are
// deleted there.
#pragma once

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "shardpress.pb.h"

namespace sp {

using BlobOwnerSet = std::set<std::pair<std::string, std::string>>;  // (digest, owner)

BlobOwnerSet blob_owners(const shardpress::v1::JobRecord& job, const std::vector<const shardpress::v1::TaskRecord*>& tasks);

}  // namespace sp
