// Assembling a compression job's output: the output tensors in plan order — each layer as
// the task that compressed it returned it, the other shards as imported — read from the
// blob store (digest checked) and written as a checkpoint that appears whole or not at all
// (checkpoint/assembler.h), or with format gguf as one GGUF file (every shard a task's
// GGUF tensors, the header from the model's config and tokenizer, written beside its name
// and renamed into place). The layout follows from the plan alone (output_specs), so the
// output is written while the tasks finish: each result goes into its place as soon as it
// is DONE, and the end of the job is the rest (usually nothing) plus a sync and a rename.
// An output already published with exactly these digests (before a crash) counts as done;
// a GGUF file records the job that wrote it (`shardpress.job`), whose results are
// deterministic.
//
// Runs without the coordinator's lock; it talks back only through the hooks.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "checkpoint/assembler.h"
#include "common/status.h"
#include "coordinator/blob_store.h"
#include "shardpress.pb.h"

namespace sp {

struct AssemblyHooks {
  std::function<bool()> running;  // false once the job is no longer running/assembling
  std::function<void(const std::string& phase)> phase;
  std::string model_root;               // config.json and tokenizer files are read under it
  uint64_t max_shard_bytes = 5'000'000'000ull;
  int64_t delay_ms = 0;                 // test hook: sleep this long after each tensor
  uint64_t fail_writes_after_bytes = 0; // test hook: writes fail with ENOSPC after this many bytes (0: never)
};

// `outputs`: task name -> its record (the tasks named by the plan's output_task).
using TaskOutputs = std::map<std::string, shardpress::v1::TaskRecord>;

// A job's output being written: the hidden folder of a CheckpointAssembler with the
// plan's layout, and which tensors are in it.
class OutputStream {
 public:
  // FAILED_PRECONDITION if the output folder exists (and the spec does not overwrite).
  static absl::StatusOr<std::unique_ptr<OutputStream>> open(const shardpress::v1::JobRecord& job, BlobStore& blobs,
                                                            const AssemblyHooks& hooks);
  // Writes every tensor of the imported pass-through shards and of DONE tasks' results
  // that is not written yet (CANCELLED when hooks.running() turns false).
  absl::Status write_done(const TaskOutputs& outputs);
  // Writes the rest and publishes the folder. INTERNAL if a tensor written earlier is not
  // the final result's (the caller then assembles afresh).
  absl::Status finish(const TaskOutputs& outputs);
  size_t written() const { return written_.size(); }
  void set_hooks(AssemblyHooks hooks) { hooks_ = std::move(hooks); }

 private:
  OutputStream(const shardpress::v1::JobRecord& job, BlobStore& blobs, AssemblyHooks hooks)
      : job_(job), blobs_(blobs), hooks_(std::move(hooks)) {}
  // Writes the output tensors known now (pass-through shards, DONE results) not written
  // yet; with `all`, every output task must be DONE.
  absl::Status write_known(const TaskOutputs& outputs, bool all);

  shardpress::v1::JobRecord job_;
  BlobStore& blobs_;
  AssemblyHooks hooks_;
  std::unique_ptr<OutputSink> sink_;  // a checkpoint folder, or one GGUF file (format gguf)
  std::map<std::string, std::string> written_;  // tensor -> digest
};

// Assembles the job's output, continuing `stream` when one was written while the tasks
// ran (nullptr: all of it now).
absl::Status assemble_job(const shardpress::v1::JobRecord& job, const TaskOutputs& outputs, BlobStore& blobs,
                          const AssemblyHooks& hooks, std::unique_ptr<OutputStream> stream = nullptr);

}  // namespace sp
