#include "checkpoint/gguf_export.h"

#include <filesystem>
#include <map>
#include <optional>
#include <thread>

#include "checkpoint/gguf_model.h"
#include "checkpoint/gguf_vocab.h"
#include "common/file_util.h"
#include "common/float_convert.h"
#include "ops/calibrate_layer.h"
#include "fmt/format.h"
#include "formats/gguf_names.h"
#include "formats/gguf_writer.h"
#include "formats/model.h"
#include "formats/sentencepiece_model.h"
#include "nlohmann/json.hpp"

namespace sp {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// The plan (ops/gguf_plan, with the importance vector of each weight the matrix names) and
// the tensor it is of.
struct Planned {
  const ModelTensor* t;
  GgufTensorPlan p;
};

absl::StatusOr<std::vector<Planned>> plan_tensors(const ModelDescription& desc, const GgufExportOptions& options,
                                                  GgufExportSummary* summary) {
  SP_ASSIGN_OR_RETURN(std::vector<GgufTensorPlan> plan, plan_gguf_tensors(desc, options.type));
  if (options.imatrix) SP_RETURN_IF_ERROR(add_importance(plan, *options.imatrix));
  for (const auto& g : gguf_generated_tensors(desc.config)) {  // written first, from the config
    summary->bytes += g.plan.bytes;
    summary->plan.push_back(g.plan);
  }
  std::vector<Planned> planned;
  for (GgufTensorPlan& p : plan) {
    Planned x{desc.find(p.source), std::move(p)};
    if (x.p.quantizable) {
      summary->weights += x.t->stored.numel();
      summary->weight_bytes += x.p.bytes;
    }
    if (!x.p.fallback.empty()) summary->fallbacks.push_back(x.p.fallback);
    summary->bytes += x.p.bytes;
    summary->plan.push_back(x.p);
    planned.push_back(std::move(x));
  }
  summary->tensors = static_cast<int>(summary->plan.size());
  return planned;
}

// GPTQ: the shards in order, the embeddings' lookup feeding layer 0, each layer compressed
// on the grid of its tensors' types by calibrate_layer, the rest converted as planned.
absl::Status write_gptq(Model& model, const std::vector<Planned>& planned, const GgufExportOptions& options,
                        GgufWriter& writer, GgufExportSummary* summary) {
  const ModelConfig& c = model.desc.config;
  std::map<std::string, const Planned*> by_source;
  for (const auto& x : planned) by_source[x.t->name] = &x;
  CompressSettings settings;
  settings.quantize.reset();
  settings.gguf = options.type;
  settings.quant_method = QuantMethod::kGptq;
  settings.gptq = options.gptq;
  const TokenBatch& ids = *options.gptq_ids;
  Activations acts;
  for (const ModelShard& shard : model.desc.shards) {
    std::vector<InputTensor> inputs;
    for (const auto& name : shard.tensors) {
      auto it = by_source.find(name);
      if (it == by_source.end()) continue;  // not written (rotary buffer)
      inputs.push_back({it->second->t, model.files.find(name)->view().bytes, &it->second->p});
    }
    if (shard.kind == ShardKind::kLayer) {
      SP_ASSIGN_OR_RETURN(CalibratedLayer cl, calibrate_layer(c, shard.layer, inputs, acts, settings, options.sequential));
      for (const auto& l : cl.linears) summary->gptq_loss += l.loss;
      for (const auto& group : cl.result.groups)
        for (const auto& t : group) SP_RETURN_IF_ERROR(writer.write(t.spec.name, t.data));
    } else {
      if (shard.kind == ShardKind::kEmbedding)
        acts = embed_calibration(c, to_float32(inputs[0].bytes, inputs[0].meta->stored.dtype), ids.ids.data(),
                                 ids.sequences, ids.seq_len);
      for (const auto& in : inputs)
        SP_RETURN_IF_ERROR(writer.write(in.gguf->name, gguf_tensor_bytes(*in.gguf, in.bytes, in.meta->stored.dtype,
                                                                         in.meta->stored.shape, 1)));
    }
    for (const auto& name : shard.tensors) model.files.find(name)->release();
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<GgufMetadata> gguf_metadata(const std::string& model_dir, const ModelConfig& c, const GgufFtype& type,
                                           const ImatrixRecord* imatrix) {
  const std::string arch(gguf_arch_name(c.arch));

  // Metadata in the converter's order (§2.2, §4.5).
  GgufMetadata md;
  md.add_string("general.architecture", arch);
  md.add_string("general.type", "model");
  md.add_string("general.name", fs::path(model_dir).lexically_normal().filename().string());
  const json& raw = c.raw;
  md.add_u32(arch + ".block_count", static_cast<uint32_t>(c.num_layers));
  if (raw.contains("max_position_embeddings") && raw["max_position_embeddings"].is_number_unsigned())
    md.add_u32(arch + ".context_length", raw["max_position_embeddings"].get<uint32_t>());
  else
    md.add_u32(arch + ".context_length", 4096);
  md.add_u32(arch + ".embedding_length", static_cast<uint32_t>(c.hidden_size));
  md.add_u32(arch + ".feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  md.add_u32(arch + ".attention.head_count", static_cast<uint32_t>(c.num_heads));
  md.add_u32(arch + ".attention.head_count_kv", static_cast<uint32_t>(c.num_kv_heads));
  md.add_f32(arch + ".rope.freq_base", static_cast<float>(c.rope_theta));
  md.add_f32(arch + ".attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  if (raw.contains("head_dim")) {
    md.add_u32(arch + ".attention.key_length", static_cast<uint32_t>(c.head_dim));
    md.add_u32(arch + ".attention.value_length", static_cast<uint32_t>(c.head_dim));
  }
  md.add_u32("general.file_type", type.file_type);
  if (c.arch == Arch::kLlama) {
    md.add_u32("llama.vocab_size", static_cast<uint32_t>(c.vocab_size));
    md.add_u32("llama.rope.dimension_count", static_cast<uint32_t>(c.head_dim));
  }
  if (c.arch == Arch::kExaone4) {  // Exaone4Model.set_gguf_parameters (§2.3)
    md.add_u32("exaone4.vocab_size", static_cast<uint32_t>(c.vocab_size));
    if (c.sliding_window) {
      md.add_u32("exaone4.attention.sliding_window", static_cast<uint32_t>(*c.sliding_window));
      std::vector<bool> sliding;
      for (AttentionKind k : c.layer_types) sliding.push_back(k == AttentionKind::kSliding);
      md.add_bools("exaone4.attention.sliding_window_pattern", sliding);
    }
  }
  if (c.rope_scaling.is_object()) {
    const std::string type = c.rope_scaling.value("rope_type", c.rope_scaling.value("type", std::string()));
    if (type == "linear" && c.rope_scaling.contains("factor")) {
      md.add_string(arch + ".rope.scaling.type", "linear");
      md.add_f32(arch + ".rope.scaling.factor", c.rope_scaling["factor"].get<float>());
    } else if (type == "llama3" && c.arch != Arch::kQwen2) {
      // no keys: the rope_freqs.weight tensor carries it (gguf_generated_tensors)
    } else if (!type.empty() && type != "default") {
      return absl::UnimplementedError(
          fmt::format("GGUF output of rope_scaling '{}' for {} is not written yet", type, arch));
    }
  }
  SP_RETURN_IF_ERROR(add_gguf_vocab(model_dir, c, md));
  md.add_u32("general.quantization_version", 2);
  // What llama.cpp's keys cannot say for reading the file back (EXAONE 4's layer pattern and
  // NoPE layers, Llama-3 RoPE scaling's parameters): the config itself (GgufModel reads it).
  if (c.arch == Arch::kExaone4 || !gguf_generated_tensors(c).empty()) md.add_string(kGgufConfigKey, c.raw.dump());
  if (imatrix) {  // what llama-quantize records (§7.6)
    md.add_string("quantize.imatrix.file", imatrix->file.substr(0, 127));
    md.add_string("quantize.imatrix.dataset", imatrix->dataset);
    md.add_i32("quantize.imatrix.entries_count", imatrix->entries);
    if (imatrix->chunks > 0) md.add_i32("quantize.imatrix.chunks_count", imatrix->chunks);
  }

  return md;
}

absl::StatusOr<GgufExportSummary> plan_gguf(const ModelDescription& desc, const GgufExportOptions& options) {
  GgufExportSummary summary;
  SP_RETURN_IF_ERROR(plan_tensors(desc, options, &summary).status());
  return summary;
}

absl::StatusOr<GgufExportSummary> export_gguf(const std::string& model_dir, const std::string& out_path,
                                              const GgufExportOptions& options) {
  std::error_code ec;
  if (fs::exists(out_path, ec))
    return absl::FailedPreconditionError(fmt::format("{} already exists; choose a new file (nothing is overwritten)", out_path));
  SP_ASSIGN_OR_RETURN(Model model, open_model(model_dir));
  std::optional<ImatrixRecord> record;
  if (options.imatrix) record = options.imatrix->record(options.imatrix_file);
  SP_ASSIGN_OR_RETURN(GgufMetadata md, gguf_metadata(model_dir, model.desc.config, options.type,
                                                     record ? &*record : nullptr));
  GgufExportSummary summary;
  SP_ASSIGN_OR_RETURN(std::vector<Planned> planned, plan_tensors(model.desc, options, &summary));
  const std::vector<GgufGeneratedTensor> generated = gguf_generated_tensors(model.desc.config);
  std::vector<GgufTensor> infos;
  for (const auto& g : generated) infos.push_back({g.plan.name, g.plan.ne, static_cast<uint32_t>(g.plan.type), g.plan.bytes});
  for (const auto& x : planned) infos.push_back({x.p.name, x.p.ne, static_cast<uint32_t>(x.p.type), x.p.bytes});
  SP_ASSIGN_OR_RETURN(auto writer, GgufWriter::create(out_path, md, std::move(infos)));
  for (const auto& g : generated) SP_RETURN_IF_ERROR(writer->write(g.plan.name, g.bytes));
  const int threads = options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (options.gptq_ids) {  // GPTQ layer by layer on the calibration activations (ops/calibrate_layer)
    SP_RETURN_IF_ERROR(write_gptq(model, planned, options, *writer, &summary));
    SP_RETURN_IF_ERROR(writer->finish());
    summary.path = out_path;
    summary.bytes = fs::file_size(out_path, ec);
    return summary;
  }
  for (const auto& x : planned) {
    const TensorRef* ref = model.files.find(x.t->name);
    SP_RETURN_IF_ERROR(
        writer->write(x.p.name, gguf_tensor_bytes(x.p, ref->view().bytes, x.t->stored.dtype, x.t->stored.shape, threads)));
    ref->release();
  }
  SP_RETURN_IF_ERROR(writer->finish());
  summary.path = out_path;
  summary.bytes = fs::file_size(out_path, ec);
  return summary;
}

}  // namespace sp
