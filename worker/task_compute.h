// What a task computes, as a plain function of its lease and its input bytes (no cache,
// no network): the worker daemon reads the inputs and uploads what this returns, and the
// coordinator's core tests run tasks in-process through it.
//
// Thread-safety: pure function of its inputs.
#pragma once

#include <span>
#include <vector>

#include "common/status.h"
#include "ops/compress_shard.h"
#include "shardpress.pb.h"
#include "worker/device.h"

namespace sp {

struct TaskOutcome {
  ShardResult result;  // the output groups to upload, in the order the plan checks them
  double nll = 0;      // EVAL_HEAD
  std::vector<double> logliks;  // EVAL_HEAD of a multiple-choice evaluation
  int64_t predictions = 0;
};

// Runs the leased task on `inputs` (the bytes of lease.inputs(), in order). DATA_LOSS when
// an input's bytes disagree with its shape; the ops' errors otherwise.
absl::StatusOr<TaskOutcome> compute_task(const shardpress::v1::LeaseResponse& lease,
                                         std::span<const std::span<const uint8_t>> inputs,
                                         const DeviceChoice& device, uint64_t gpu_memory);

// The completion of `lease` with `outcome`: one OutputGroup per result group (name, dtype,
// shape, size and digest of every tensor) and the prune reports. Blobs are not touched.
shardpress::v1::CompleteRequest completion(const shardpress::v1::LeaseResponse& lease, const std::string& worker_id,
                                           const TaskOutcome& outcome);

}  // namespace sp
