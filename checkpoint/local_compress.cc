#include "checkpoint/local_compress.h"

#include <chrono>
#include <filesystem>

#include "checkpoint/assembler.h"
#include "checkpoint/compression_record.h"
#include "common/file_util.h"
#include "common/float_convert.h"
#include "fmt/format.h"
#include "formats/model.h"

namespace sp {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

}  // namespace

absl::StatusOr<LocalCompressSummary> compress_model_local(const std::string& model_dir,
                                                          const std::string& out_dir,
                                                          const LocalCompressOptions& options) {
  const auto t0 = Clock::now();
  SP_RETURN_IF_ERROR(validate(options.settings));
  const bool calibrated = needs_calibration(options.settings);
  if (calibrated && !options.calibration)
    return absl::InvalidArgumentError(fmt::format("{} needs calibration token ids", describe(options.settings)));
  std::error_code ec;
  if (fs::exists(out_dir, ec))
    return absl::FailedPreconditionError(fmt::format(
        "output folder {} already exists; choose a new folder (nothing is overwritten)", out_dir));
  SP_ASSIGN_OR_RETURN(Model opened, open_model(model_dir));
  const ModelFiles& files = opened.files;
  const ModelDescription& model = opened.desc;

  const Nf4Backend& backend = options.backend ? *options.backend : nf4_best_backend();
  LocalCompressSummary summary;
  fs::path out = fs::path(out_dir).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();
  summary.output_dir = out.string();
  summary.shards = model.shards.size();
  // The output's layout is known before any result (output_specs): each result is written
  // into its place as soon as it is computed, nothing is staged.
  std::vector<TensorGroup> groups;
  for (const ModelShard& shard : model.shards)
    for (const auto& name : shard.tensors) groups.push_back(output_specs(*model.find(name), options.settings));
  AssembleOptions ao;
  ao.source_dir = model_dir;
  ao.config = model.config.raw;
  ao.quantization = options.settings.quantize;
  ao.max_shard_bytes = options.max_shard_bytes;
  ao.provenance = {{"model", fs::absolute(model_dir).lexically_normal().string()}};
  ao.compression = compression_record(options.settings);
  SP_ASSIGN_OR_RETURN(auto assembler, CheckpointAssembler::create(out.string(), std::move(groups), ao));
  Activations acts;  // calibration: what enters the next layer
  for (size_t si = 0; si < model.shards.size(); ++si) {
    const auto ts = Clock::now();
    const ModelShard& shard = model.shards[si];
    std::vector<InputTensor> inputs;
    for (const auto& name : shard.tensors) {
      inputs.push_back({model.find(name), files.find(name)->view().bytes});
      summary.input_bytes += files.find(name)->info->nbytes();
    }
    ShardResult result;
    if (calibrated && shard.kind == ShardKind::kLayer) {
      SP_ASSIGN_OR_RETURN(CalibratedLayer cl,
                          calibrate_layer(model.config, shard.layer, inputs, acts, options.settings,
                                          options.sequential, backend, options.device));
      result = std::move(cl.result);
      for (auto& l : cl.linears) summary.linears.push_back(std::move(l));
      round_activations(acts, options.activations_dtype);  // as a job's tasks hand them on
    } else {
      if (calibrated && shard.kind == ShardKind::kEmbedding) {
        const std::vector<float> embed = to_float32(inputs[0].bytes, inputs[0].meta->stored.dtype);
        const TokenBatch& ids = *options.calibration;
        acts = embed_calibration(model.config, embed, ids.ids.data(), ids.sequences, ids.seq_len);
      }
      SP_ASSIGN_OR_RETURN(result, compress_shard(inputs, options.settings, backend, options.prune_device));
    }
    for (const auto& name : shard.tensors) files.find(name)->release();  // read once: drop from RSS
    for (const auto& group : result.groups)
      for (const auto& t : group) {
        SP_RETURN_IF_ERROR(assembler->write(t.spec.name, t.data));
        summary.output_bytes += t.data.size();
      }
    for (auto& r : result.reports) {
      if (r.quantized) summary.quantized_params += model.find(r.name)->stored.numel();
      summary.tensors.push_back(std::move(r));
    }
    if (options.on_shard)
      options.on_shard(si, model.shards.size(), shard.id,
                       std::chrono::duration<double>(Clock::now() - ts).count());
  }
  summary.files = assembler->shard_names();
  SP_RETURN_IF_ERROR(assembler->finish());
  summary.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return summary;
}

}  // namespace sp
