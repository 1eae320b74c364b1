// Importing a job: its model read in place (or, for an evaluation of a shardpress
// checkpoint, decoded tensor by tensor), planned once (jobs/job_plan.h), and recorded shard
// by shard as content-addressed blobs: references to the model's own files (the source is
// the store; nothing is copied), decoded tensors stored. After each shard the coordinator commits the plan
// so far and creates the tasks whose inputs are now all imported, so workers start while
// the rest is still being read. Re-running after a crash keeps the plan and every task.
//
// The import runs without the coordinator's lock; it talks back only through the hooks.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "common/status.h"
#include "coordinator/blob_store.h"
#include "shardpress.pb.h"

namespace sp {

// A tensor already imported by another job: the same bytes of the same file (path, offset,
// size, modification time), so its digest is known and the bytes need not be read again.
struct SourceKey {
  std::string file;
  uint64_t offset = 0, size = 0;
  int64_t mtime_ns = 0;
  auto operator<=>(const SourceKey&) const = default;
};
using KnownDigests = std::map<SourceKey, std::string>;

struct ImportHooks {
  // The root the model may be read under (model root; an evaluation also the output root).
  std::function<absl::StatusOr<std::string>(const std::string& model_dir)> model_root;
  // False once the job is no longer running (cancelled): the import stops.
  std::function<bool()> running;
  std::function<void(const std::string& phase)> phase;
  // Under the coordinator's lock: records `plan` with shards 0..`shard` imported (their
  // blobs are in the store: the coordinator checks) and creates the tasks that can exist
  // now. UNAVAILABLE with "blob missing" asks for the shard to be written again. `reused`:
  // tensors so far taken from another job's import (known_digests) without reading them.
  std::function<absl::Status(const shardpress::v1::JobRecord& job, int shard, bool last, size_t reused)> commit;
  // The digests other jobs' imports recorded (under the lock, once per import); empty: none.
  std::function<KnownDigests()> known_digests;
  bool copy = false;     // store a copy of every tensor instead of references to the files
  int64_t delay_ms = 0;  // test hook: sleep this long after each tensor
};

absl::Status import_job(const shardpress::v1::JobRecord& job, BlobStore& blobs, const ImportHooks& hooks);

}  // namespace sp
