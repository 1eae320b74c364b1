// Assembling a finished compression job: the output tensors in plan order — each layer as
// the task that compressed it returned it, the other shards as imported — read from the
// blob store (digest checked) and written as a checkpoint that appears whole or not at all
// (checkpoint/assembler.h). An output already published with exactly these digests (before
// a crash) counts as done.
//
// Runs without the coordinator's lock; it talks back only through the hooks.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "common/status.h"
#include "coordinator/blob_store.h"
#include "shardpress.pb.h"

namespace sp {

struct AssemblyHooks {
  std::function<bool()> running;  // false once the job is no longer assembling
  std::function<void(const std::string& phase)> phase;
  std::string model_root;               // config.json and tokenizer files are read under it
  uint64_t max_shard_bytes = 5'000'000'000ull;
  int64_t delay_ms = 0;                 // test hook: sleep this long after each tensor
  uint64_t fail_writes_after_bytes = 0; // test hook: writes fail with ENOSPC after this many bytes (0: never)
};

// `outputs`: task name -> its DONE record (the tasks named by the plan's output_task).
absl::Status assemble_job(const shardpress::v1::JobRecord& job,
                          const std::map<std::string, shardpress::v1::TaskRecord>& outputs, BlobStore& blobs,
                          const AssemblyHooks& hooks);

}  // namespace sp
