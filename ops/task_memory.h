// Peak host memory of one shard task, for planning: which worker budget a task fits.
#pragma once

#include <cstdint>

#include "formats/model_layout.h"
#include "ops/compress_shard.h"

namespace sp {

struct TaskMemory {
  uint64_t input = 0;    // the shard's bytes as stored (fetched and mapped)
  uint64_t working = 0;  // float32 copy + selection scratch of the largest weight
  uint64_t output = 0;   // the compressed tensors, held until uploaded
  uint64_t overhead = 0; // fixed allowance for the runtime and buffers
  uint64_t total() const { return input + working + output + overhead; }
};

// Fixed allowance per task.
inline constexpr uint64_t kTaskOverheadBytes = 64ull << 20;

TaskMemory estimate_task_memory(const ModelShard& shard, const CompressSettings& settings);

}  // namespace sp
