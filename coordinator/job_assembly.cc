#include "coordinator/job_assembly.h"

#include <chrono>
#include <filesystem>
#include <thread>

#include "checkpoint/compression_record.h"
#include "checkpoint/gguf_export.h"
#include "common/file_util.h"
#include "fmt/format.h"
#include "formats/gguf_reader.h"
#include "formats/gguf_writer.h"
#include "formats/model_config.h"
#include "jobs/job_plan.h"
#include "jobs/job_settings.h"
#include "jobs/output_check.h"
#include "nlohmann/json.hpp"

namespace sp {

namespace fs = std::filesystem;
using namespace shardpress::v1;  // NOLINT

namespace {

TensorSpec spec_of(const TensorMeta& m) {
  return TensorSpec{m.name(), *dtype_from_name(m.dtype()), {m.shape().begin(), m.shape().end()}};
}

// The output tensors (name -> blob digest) in plan order: pass-through shards as imported,
// the results of DONE tasks; with `all`, an output task not DONE is an error.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> output_digests(const JobRecord& j,
                                                                               const TaskOutputs& outputs, bool all) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const ShardPlan& s : j.plan().shards()) {
    if (s.auxiliary()) continue;
    if (s.output_task().empty()) {
      for (const auto& m : s.tensors()) out.emplace_back(m.name(), m.digest());
      continue;
    }
    auto t = outputs.find(s.output_task());
    if (t == outputs.end() || t->second.state() != DONE) {
      if (all) return absl::InternalError(fmt::format("{}: task {} has no result to assemble", j.id(), s.output_task()));
      continue;
    }
    for (const auto& g : t->second.outputs())
      for (const auto& m : g.tensors())
        if (!is_internal_tensor(m.name())) out.emplace_back(m.name(), m.digest());
  }
  return out;
}

// One GGUF file as an output sink (formats/gguf_writer: atomic, any order).
class GgufSink : public OutputSink {
 public:
  explicit GgufSink(std::unique_ptr<GgufWriter> w) : w_(std::move(w)) {}
  absl::Status write(std::string_view name, std::span<const uint8_t> bytes, std::string) override {
    return w_->write(name, bytes);
  }
  absl::Status finish() override { return w_->finish(); }

 private:
  std::unique_ptr<GgufWriter> w_;
};

constexpr const char* kGgufJobKey = "shardpress.job";

// The GGUF file of a format gguf job: the header from the model's config and tokenizer
// (what `compress --format gguf` writes) and the job's id, the tensors the plan lists.
absl::StatusOr<std::unique_ptr<OutputSink>> open_gguf_sink(const JobRecord& j, const GgufFtype& type,
                                                           const AssemblyHooks& hooks) {
  SP_ASSIGN_OR_RETURN(ModelConfig config, load_model_config(j.model_dir(), hooks.model_root));
  std::optional<ImatrixRecord> imatrix;
  if (j.plan().has_gguf_imatrix()) {
    const auto& r = j.plan().gguf_imatrix();
    imatrix = ImatrixRecord{r.file(), r.dataset(), r.entries(), r.chunks()};
  }
  SP_ASSIGN_OR_RETURN(GgufMetadata md, gguf_metadata(j.model_dir(), config, type, imatrix ? &*imatrix : nullptr));
  md.add_string(kGgufJobKey, j.id());
  const std::vector<GgufGeneratedTensor> generated = gguf_generated_tensors(config);  // from the config alone
  std::vector<GgufTensor> infos;
  for (const auto& g : generated) infos.push_back({g.plan.name, g.plan.ne, static_cast<uint32_t>(g.plan.type), g.plan.bytes});
  for (const ShardPlan& s : j.plan().shards()) {
    if (s.auxiliary()) continue;
    for (const auto& m : s.tensors()) {
      if (!m.has_gguf()) return absl::InternalError(fmt::format("{}: {} has no GGUF target in the plan", j.id(), m.name()));
      infos.push_back({m.gguf().name(), {m.gguf().ne().begin(), m.gguf().ne().end()}, m.gguf().type(), m.gguf().nbytes()});
    }
  }
  SP_ASSIGN_OR_RETURN(auto w, GgufWriter::create(j.output_dir(), md, std::move(infos)));
  for (const auto& g : generated) SP_RETURN_IF_ERROR(w->write(g.plan.name, g.bytes));
  return std::unique_ptr<OutputSink>(new GgufSink(std::move(w)));
}

// A GGUF file this job published before a crash.
bool gguf_published_by(const JobRecord& j) {
  auto g = read_gguf(j.output_dir());
  if (!g.ok()) return false;
  auto it = g->strings.find(kGgufJobKey);
  return it != g->strings.end() && it->second == j.id();
}

}  // namespace

absl::StatusOr<std::unique_ptr<OutputStream>> OutputStream::open(const JobRecord& j, BlobStore& blobs,
                                                                const AssemblyHooks& hooks) {
  // The layout from the plan: each result where `compress` puts it (output_specs).
  const CompressSettings settings = compress_settings(j.spec());
  if (settings.gguf) {
    std::unique_ptr<OutputStream> out(new OutputStream(j, blobs, hooks));
    SP_ASSIGN_OR_RETURN(out->sink_, open_gguf_sink(j, *settings.gguf, hooks));
    return out;
  }
  std::vector<TensorGroup> groups;
  for (const ShardPlan& s : j.plan().shards()) {
    if (s.auxiliary()) continue;
    for (const auto& m : s.tensors())
      groups.push_back(s.output_task().empty() ? TensorGroup{spec_of(m)} : expected_output(m, settings).tensors);
  }
  SP_ASSIGN_OR_RETURN(ModelConfig config, load_model_config(j.model_dir(), hooks.model_root));
  AssembleOptions ao;
  ao.source_dir = j.model_dir();
  ao.config = config.raw;
  ao.quantization = settings.quantize;
  ao.max_shard_bytes = hooks.max_shard_bytes;
  ao.provenance = {{"job", j.id()}, {"name", j.spec().name()}, {"model", j.model_dir()},
                   {"compression", describe_spec(j.spec())}};
  ao.compression = compression_record(settings);
  ao.replace_existing = j.spec().overwrite();
  ao.fail_writes_after_bytes = hooks.fail_writes_after_bytes;
  std::unique_ptr<OutputStream> out(new OutputStream(j, blobs, hooks));
  SP_ASSIGN_OR_RETURN(out->sink_, CheckpointAssembler::create(j.output_dir(), std::move(groups), ao));
  return out;
}

absl::Status OutputStream::write_known(const TaskOutputs& outputs, bool all) {
  SP_ASSIGN_OR_RETURN(const auto digests, output_digests(job_, outputs, all));
  size_t done = written_.size();
  for (const auto& [name, digest] : digests) {
    if (auto w = written_.find(name); w != written_.end()) {
      if (w->second != digest)
        return absl::InternalError(fmt::format("{}: written as {}, the result is now {}", name, w->second, digest));
      continue;
    }
    if (!hooks_.running()) return absl::CancelledError("job no longer running");
    if (all) hooks_.phase(fmt::format("assembling {}/{}", done, digests.size()));
    SP_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, blobs_.read_all(digest));  // digest checked
    SP_RETURN_IF_ERROR(sink_->write(name, bytes, digest));
    written_[name] = digest;
    ++done;
    if (hooks_.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(hooks_.delay_ms));
  }
  return absl::OkStatus();
}

absl::Status OutputStream::write_done(const TaskOutputs& outputs) { return write_known(outputs, false); }

absl::Status OutputStream::finish(const TaskOutputs& outputs) {
  SP_RETURN_IF_ERROR(write_known(outputs, true));
  return sink_->finish();
}

absl::Status assemble_job(const JobRecord& j, const TaskOutputs& outputs, BlobStore& blobs, const AssemblyHooks& hooks,
                          std::unique_ptr<OutputStream> stream) {
  hooks.phase("assembling");
  SP_ASSIGN_OR_RETURN(const auto digests, output_digests(j, outputs, true));
  // Published before a crash? Then the manifest lists exactly these digests.
  const fs::path manifest = fs::path(j.output_dir()) / kManifestName;
  std::error_code ec;
  if (fs::exists(j.output_dir(), ec)) {
    auto text = read_file(manifest.string());
    bool same = compress_settings(j.spec()).gguf && gguf_published_by(j);
    if (!same && text.ok()) {
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
  if (stream) {
    stream->set_hooks(hooks);
    const absl::Status st = stream->finish(outputs);
    if (!absl::IsInternal(st)) return st;
    stream.reset();  // a result changed after it was written: all of it again
  }
  SP_ASSIGN_OR_RETURN(stream, OutputStream::open(j, blobs, hooks));
  return stream->finish(outputs);
}

}  // namespace sp
