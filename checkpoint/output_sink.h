// Where a job's output tensors go as they land: a checkpoint folder (CheckpointAssembler)
// or one GGUF file. Each declared tensor is written once, in any order; finish() publishes
// the output whole; dropping the sink before finish() leaves nothing behind.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sp {

class OutputSink {
 public:
  virtual ~OutputSink() = default;
  // `known_digest`: the bytes' digest when the caller has just checked it.
  virtual absl::Status write(std::string_view name, std::span<const uint8_t> bytes, std::string known_digest) = 0;
  virtual absl::Status finish() = 0;
};

}  // namespace sp
