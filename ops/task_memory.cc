#include "ops/task_memory.h"

namespace sp {

TaskMemory estimate_task_memory(const ModelShard& shard, const CompressSettings& s) {
  TaskMemory m;
  m.input = shard.bytes;
  m.overhead = kTaskOverheadBytes;
  const uint64_t n = shard.largest_linear_numel;
  if (s.prune) {
    m.working += n * sizeof(float);  // float32 copy being pruned
    switch (s.prune->scope) {
      case PruneScope::kTensor: m.working += n * sizeof(uint32_t); break;
      case PruneScope::kRow: m.working += static_cast<uint64_t>(shard.largest_linear_cols) * sizeof(uint32_t); break;
      case PruneScope::kTwoFour: break;
    }
  }
  const uint64_t passthrough = shard.bytes - shard.linear_bytes;
  if (s.quantize) {
    const uint64_t bs = static_cast<uint64_t>(s.quantize->blocksize);
    const uint64_t p = shard.linear_params;
    // packed nibbles + absmax (float32 while quantizing, uint8 after double quant)
    m.output = passthrough + (p + 1) / 2 + (p + bs - 1) / bs * (s.quantize->double_quant ? 1 : 4);
    m.working += (n + bs - 1) / bs * sizeof(float);  // float absmax before double quant
  } else {
    m.output = shard.bytes;
  }
  return m;
}

}  // namespace sp
