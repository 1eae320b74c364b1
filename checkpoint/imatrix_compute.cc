#include "checkpoint/imatrix_compute.h"

#include "common/float_convert.h"
#include "fmt/format.h"
#include "formats/gguf_names.h"
#include "formats/model.h"
#include "ops/importance.h"

namespace sp {

absl::StatusOr<Imatrix> compute_imatrix(const std::string& model_dir, const TokenBatch& ids, const std::string& dataset) {
  SP_ASSIGN_OR_RETURN(Model model, open_model(model_dir));
  const ModelConfig& c = model.desc.config;
  if (ids.sequences < 1) return absl::InvalidArgumentError("an importance matrix needs at least one sequence of token ids");
  Imatrix m;
  m.last_call = static_cast<int32_t>(ids.sequences);
  m.dataset = dataset;
  Activations acts;
  for (const ModelShard& shard : model.desc.shards) {
    if (shard.kind == ShardKind::kEmbedding) {
      const TensorRef* ref = model.files.find(shard.tensors[0]);
      acts = embed_calibration(c, to_float32(ref->view().bytes, model.desc.find(shard.tensors[0])->stored.dtype),
                               ids.ids.data(), ids.sequences, ids.seq_len);
      ref->release();
      continue;
    }
    if (shard.kind != ShardKind::kLayer) continue;
    std::vector<InputTensor> inputs;
    for (const auto& name : shard.tensors) inputs.push_back({model.desc.find(name), model.files.find(name)->view().bytes});
    SP_ASSIGN_OR_RETURN(LayerImportance li, layer_importance(c, shard.layer, inputs, acts));
    for (const auto& name : shard.tensors) model.files.find(name)->release();
    for (const auto& name : shard.tensors) {
      const ModelTensor* t = model.desc.find(name);
      if (!is_linear_weight(t->role)) continue;
      const auto gguf = gguf_tensor_name(c.arch, t->role, t->layer);
      if (!gguf) continue;
      m.entries.push_back(
          imatrix_entry(*gguf, li.sum_squares[static_cast<int>(linear_input_of(t->role))], li.tokens, m.last_call));
    }
  }
  if (m.entries.empty()) return absl::InvalidArgumentError(fmt::format("{}: no projection to weigh", model_dir));
  return m;
}

}  // namespace sp
