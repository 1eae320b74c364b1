// The bytes of a task's inputs, from wherever they are: the source model file (when
// direct reads are allowed and the bytes there still match), else the worker's blob
// cache, else fetched from the coordinator into the cache right then. Every path checks
// the digest. Not getting an input is an error status naming the tensor — the task is
// reported failed and the coordinator retries it — never an exception or a crash,
// whatever the combination of digests, source files and cache contents.
//
// Thread-safety: safe for concurrent use (the prefetch of the next task runs beside the
// current one).
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>

#include "common/status.h"
#include "shardpress.pb.h"
#include "worker/blob_cache.h"
#include "worker/source_reader.h"

namespace sp {

class TaskInputs {
 public:
  // Streams blob `digest` (`nbytes` long) from the coordinator into the cache, checked on arrival.
  using Fetch = std::function<absl::Status(const std::string& digest, uint64_t nbytes)>;
  TaskInputs(BlobCache* cache, Fetch fetch, bool direct_read)
      : cache_(cache), fetch_(std::move(fetch)), direct_read_(direct_read) {}

  // Ahead of the task: fetches the input unless it is readable at the source or cached.
  absl::Status prefetch(const shardpress::v1::TensorMeta& in);

  struct Bytes {
    std::span<const uint8_t> bytes;
    std::shared_ptr<const MappedFile> keep;  // the mapping the bytes live in
  };
  // The input's bytes (digest-checked), fetching them again if the cache lost them.
  absl::StatusOr<Bytes> read(const shardpress::v1::TensorMeta& in);
  // After the task: drops source bytes from the resident set.
  void release(const shardpress::v1::TensorMeta& in);

 private:
  std::optional<SourceBytes> at_source(const shardpress::v1::TensorMeta& in);
  BlobCache* cache_;
  Fetch fetch_;
  bool direct_read_;
  SourceReader source_;
};

}  // namespace sp
