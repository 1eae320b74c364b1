#include "coordinator/job_assembly.h"

#include <chrono>
#include <filesystem>
#include <thread>

#include "checkpoint/assembler.h"
#include "checkpoint/compression_record.h"
#include "common/file_util.h"
#include "fmt/format.h"
#include "formats/model_config.h"
#include "jobs/job_plan.h"
#include "nlohmann/json.hpp"

namespace sp {

namespace fs = std::filesystem;
using namespace shardpress::v1;  // NOLINT

absl::Status assemble_job(const JobRecord& j, const std::map<std::string, TaskRecord>& outputs, BlobStore& blobs,
                          const AssemblyHooks& hooks) {
  hooks.phase("assembling");
  // Output tensors in plan order: layer results, and pass-through shards as imported.
  std::vector<TensorGroup> groups;
  std::vector<std::pair<std::string, std::string>> digests;  // name -> blob digest
  auto spec_of = [](const TensorMeta& m) {
    return TensorSpec{m.name(), *dtype_from_name(m.dtype()), {m.shape().begin(), m.shape().end()}};
  };
  for (const ShardPlan& s : j.plan().shards()) {
    if (s.auxiliary()) continue;
    if (s.output_task().empty()) {
      for (const auto& m : s.tensors()) {
        groups.push_back({spec_of(m)});
        digests.emplace_back(m.name(), m.digest());
      }
      continue;
    }
    auto t = outputs.find(s.output_task());
    if (t == outputs.end() || t->second.state() != DONE)
      return absl::InternalError(fmt::format("{}: task {} has no result to assemble", j.id(), s.output_task()));
    for (const auto& g : t->second.outputs()) {
      if (g.tensors_size() > 0 && is_internal_tensor(g.tensors(0).name())) continue;
      TensorGroup group;
      for (const auto& m : g.tensors()) {
        group.push_back(spec_of(m));
        digests.emplace_back(m.name(), m.digest());
      }
      groups.push_back(std::move(group));
    }
  }
  // Published before a crash? Then the manifest lists exactly these digests.
  const fs::path manifest = fs::path(j.output_dir()) / kManifestName;
  std::error_code ec;
  if (fs::exists(j.output_dir(), ec)) {
    auto text = read_file(manifest.string());
    bool same = false;
    if (text.ok()) {
      try {
        const auto m = nlohmann::json::parse(*text);
        same = m.at("tensors").size() == digests.size();
        for (const auto& [name, d] : digests) same = same && m.at("tensors").at(name).at("digest") == d;
      } catch (const std::exception&) {
        same = false;
      }
    }
    if (same) return absl::OkStatus();
    if (!j.spec().overwrite())
      return absl::FailedPreconditionError(fmt::format("output {} appeared while the job ran", j.output_dir()));
  }
  SP_ASSIGN_OR_RETURN(ModelConfig config, load_model_config(j.model_dir(), hooks.model_root));
  AssembleOptions ao;
  ao.source_dir = j.model_dir();
  ao.config = config.raw;
  ao.quantization = compress_settings(j.spec()).quantize;
  ao.max_shard_bytes = hooks.max_shard_bytes;
  ao.provenance = {{"job", j.id()}, {"name", j.spec().name()}, {"model", j.model_dir()},
                   {"compression", describe_spec(j.spec())}};
  ao.compression = compression_record(compress_settings(j.spec()));
  ao.replace_existing = j.spec().overwrite();
  ao.fail_writes_after_bytes = hooks.fail_writes_after_bytes;
  SP_ASSIGN_OR_RETURN(auto assembler, CheckpointAssembler::create(j.output_dir(), std::move(groups), ao));
  size_t done = 0;
  for (const auto& [name, digest] : digests) {
    if (!hooks.running()) return absl::CancelledError("job no longer assembling");
    hooks.phase(fmt::format("assembling {}/{}", done++, digests.size()));
    SP_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, blobs.read_all(digest));  // digest checked
    SP_RETURN_IF_ERROR(assembler->write(name, bytes, digest));
    if (hooks.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(hooks.delay_ms));
  }
  return assembler->finish();
}

}  // namespace sp
