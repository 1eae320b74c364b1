#include "ops/gguf_plan.h"

#include <algorithm>
#include <cstring>

#include "common/float_convert.h"
#include "fmt/format.h"
#include "formats/gguf_names.h"
#include "ops/rope.h"

namespace sp {

absl::StatusOr<std::vector<GgufTensorPlan>> plan_gguf_tensors(const ModelDescription& desc, const GgufFtype& type) {
  const ModelConfig& c = desc.config;
  bool has_output = false;
  for (const ModelTensor& t : desc.tensors) has_output |= t.role == TensorRole::kLmHead;
  const bool is_70b = c.num_layers == 80 && (c.arch == Arch::kQwen2 || c.num_heads != c.num_kv_heads);
  std::vector<GgufTensorPlan> out;
  for (const ModelTensor& t : desc.tensors) {
    auto name = gguf_tensor_name(desc.config.arch, t.role, t.layer);
    if (!name) {
      if (t.role == TensorRole::kRotaryInvFreq) continue;
      return absl::UnimplementedError(fmt::format("{}: no GGUF name for this tensor yet", t.name));
    }
    GgufTensorPlan p;
    p.source = t.name;
    p.name = *name;
    p.ne.assign(t.stored.shape.rbegin(), t.stored.shape.rend());
    p.quantizable = gguf_quantizable(*name, static_cast<int>(t.stored.shape.size()));
    if (p.quantizable) {
      const GgufTensorSite site{*name, p.ne[0], static_cast<int>(t.layer), static_cast<int>(c.num_layers),
                                c.num_heads / std::max<int64_t>(1, c.num_kv_heads), has_output, is_70b};
      GgufTypeChoice choice = choose_gguf_type(type, site);
      p.type = choice.type;
      p.fallback = std::move(choice.fallback);
    }
    p.bytes = ggml_nbytes(p.type, static_cast<int64_t>(t.stored.numel()));
    p.permute_heads = qk_permute_heads(c, t.role).value_or(0);
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<GgufGeneratedTensor> gguf_generated_tensors(const ModelConfig& config) {
  std::vector<GgufGeneratedTensor> out;
  if (config.arch == Arch::kQwen2) return out;  // qwen2 has no rope_freqs (its loader refuses llama3 scaling)
  if (auto factors = llama3_rope_factors(config)) {
    GgufGeneratedTensor t;
    t.plan.name = kGgufRopeFreqs;
    t.plan.type = GgmlType::kF32;
    t.plan.ne = {static_cast<int64_t>(factors->size())};
    t.plan.bytes = factors->size() * sizeof(float);
    t.bytes.resize(t.plan.bytes);
    std::memcpy(t.bytes.data(), factors->data(), t.plan.bytes);
    out.push_back(std::move(t));
  }
  return out;
}

absl::Status add_importance(std::vector<GgufTensorPlan>& plan, const Imatrix& m) {
  for (GgufTensorPlan& p : plan) {
    if (!p.quantizable) continue;
    SP_ASSIGN_OR_RETURN(p.importance, m.importance(p.name, p.ne[0]));
  }
  return absl::OkStatus();
}

std::vector<uint8_t> gguf_tensor_bytes(const GgufTensorPlan& p, std::span<const uint8_t> bytes, DType dtype,
                                       const std::vector<int64_t>& shape, int threads) {
  return gguf_tensor_bytes(p, to_float32(bytes, dtype), shape, threads);
}

std::vector<uint8_t> gguf_tensor_bytes(const GgufTensorPlan& p, std::vector<float> x, const std::vector<int64_t>& shape,
                                       int threads) {
  if (p.permute_heads > 0) x = permute_qk_rows(x, shape[0], shape.size() == 2 ? shape[1] : 1, p.permute_heads);
  return ggml_quantize(p.type, x, p.ne[0], threads, p.importance);
}

}  // namespace sp
