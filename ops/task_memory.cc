#include "ops/task_memory.h"

#include <algorithm>

namespace sp {

TaskMemory estimate_task_memory(const ModelShard& shard, const CompressSettings& s) {
  TaskMemory m;
  m.input = shard.bytes;
  m.overhead = kTaskOverheadBytes;
  const uint64_t n = shard.largest_linear_numel;
  if (s.gguf) {  // each tensor in turn: a float32 copy (the largest is the embedding or a projection), its GGUF
                 // bytes (at most F32 for every tensor)
    const uint64_t largest = std::max<uint64_t>(n, shard.params - shard.linear_params);
    m.working = largest * sizeof(float);
    m.output = shard.params * sizeof(float);
    return m;
  }
  if (s.prune) {
    m.working += n * sizeof(float);  // float32 copy being pruned
    switch (s.prune->scope) {
      case PruneScope::kTensor: m.working += n * sizeof(uint32_t); break;
      case PruneScope::kRow: m.working += static_cast<uint64_t>(shard.largest_linear_cols) * sizeof(uint32_t); break;
      case PruneScope::kTwoFour: break;
    }
  }
  const uint64_t passthrough = shard.bytes - shard.linear_bytes;
  if (s.quantize && s.quantize->quant_type == BnbType::kInt8) {
    // int8 codes + a float32 scale per row (at most 4 bytes per 32 weights: rows are 32+
    // wide), and the float32 copy being rounded
    m.output = passthrough + shard.linear_params + shard.linear_params / 8;
    m.working += n * sizeof(float);
  } else if (s.quantize) {
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

namespace sp {

namespace {
uint64_t activation_bytes(const ModelConfig& c, CalibrationShape d) {
  return static_cast<uint64_t>(d.sequences) * static_cast<uint64_t>(d.tokens) *
         static_cast<uint64_t>(c.hidden_size) * sizeof(float);
}
uint64_t forward_buffers(const ModelConfig& c, CalibrationShape d) {
  const uint64_t T = static_cast<uint64_t>(d.tokens);
  const uint64_t per_token = static_cast<uint64_t>(3 * c.hidden_size + 2 * c.num_heads * c.head_dim +
                                                   2 * c.num_kv_heads * c.head_dim + 2 * c.intermediate_size);
  return (T * per_token + T * T) * sizeof(float);
}
}  // namespace

TaskMemory estimate_forward_memory(const ModelShard& shard, const ModelConfig& config, CalibrationShape data) {
  TaskMemory m;
  m.input = shard.bytes + activation_bytes(config, data);
  m.working = shard.params * sizeof(float) + forward_buffers(config, data);
  m.output = activation_bytes(config, data);
  m.overhead = kTaskOverheadBytes;
  return m;
}

TaskMemory estimate_calibration_memory(const ModelShard& shard, const ModelConfig& config,
                                       const CompressSettings& settings, CalibrationShape data) {
  TaskMemory m = estimate_task_memory(shard, settings);
  const uint64_t acts = activation_bytes(config, data);
  m.input += acts;
  auto sq = [](int64_t c) { return static_cast<uint64_t>(c) * static_cast<uint64_t>(c); };
  const uint64_t hessians = (sq(config.hidden_size) * 2 + sq(config.num_heads * config.head_dim) +
                             sq(config.intermediate_size)) * sizeof(float);
  const int64_t widest = std::max({config.hidden_size, config.num_heads * config.head_dim, config.intermediate_size});
  // H and its damped copy (factorised in place into U), W/Q/update blocks, all float32.
  const uint64_t gptq = sq(widest) * 2 * sizeof(float) + shard.largest_linear_numel * 4 * sizeof(float);
  m.working = shard.params * sizeof(float) + acts + forward_buffers(config, data) + hessians + gptq;
  m.output += acts;
  return m;
}

TaskMemory estimate_eval_head_memory(const ModelConfig& config, CalibrationShape data) {
  const uint64_t v = static_cast<uint64_t>(config.vocab_size), h = static_cast<uint64_t>(config.hidden_size);
  TaskMemory m;
  m.input = v * h * sizeof(float) + activation_bytes(config, data);
  m.working = static_cast<uint64_t>(data.tokens) * v * sizeof(float);
  m.overhead = kTaskOverheadBytes;
  return m;
}

std::vector<Stage> plan_stages(const ModelDescription& model, const CompressSettings& settings, CalibrationShape data,
                               uint64_t budget) {
  std::vector<Stage> out;
  for (const ModelShard& s : model.shards) {
    if (s.kind != ShardKind::kLayer) continue;
    const uint64_t task = estimate_calibration_memory(s, model.config, settings, data).total();
    if (!out.empty() && out.back().fits) {
      Stage& cur = out.back();
      const uint64_t grown = cur.weight_bytes + s.bytes + std::max(cur.peak_task, task);
      if (grown <= budget) {
        cur.last_layer = s.layer;
        cur.weight_bytes += s.bytes;
        cur.peak_task = std::max(cur.peak_task, task);
        continue;
      }
    }
    Stage st{s.layer, s.layer, s.bytes, task};
    st.fits = st.total() <= budget;
    out.push_back(st);
  }
  return out;
}

}  // namespace sp
