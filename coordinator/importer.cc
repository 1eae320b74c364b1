#include "coordinator/importer.h"

#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>

#include "common/digest.h"
#include "coordinator/import_source.h"
#include "fmt/format.h"
#include "formats/choice_items.h"
#include "formats/token_ids.h"
#include "jobs/job_plan.h"
#include "ops/finite_check.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT

namespace {

constexpr int kMissingBlobRetries = 3;

// The plan must still fit the model a re-import reads (same tensors, dtypes and shapes).
absl::Status check_plan_fits(const JobPlan& plan, const ModelDescription& desc, const std::string& dir) {
  for (const auto& s : plan.shards()) {
    if (s.auxiliary()) continue;
    for (const auto& m : s.tensors()) {
      const ModelTensor* t = desc.find(m.name());
      const bool same = t && std::string(dtype_name(t->stored.dtype)) == m.dtype() &&
                        t->stored.shape == std::vector<int64_t>(m.shape().begin(), m.shape().end());
      if (!same)
        return absl::FailedPreconditionError(fmt::format(
            "{}: the model changed since this job was planned ({} differs); restore it, or submit a new job", dir,
            m.name()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status import_job(const JobRecord& job_in, BlobStore& blobs, const ImportHooks& hooks) {
  JobRecord job = job_in;
  hooks.phase("importing");
  SP_ASSIGN_OR_RETURN(const JobSettings settings, job_settings(job.spec()));
  const bool eval = settings.kind == JobKind::kEvaluate;
  SP_ASSIGN_OR_RETURN(const std::string root, hooks.model_root(job.model_dir()));
  // Checked again: the folder may have changed since submit.
  SP_ASSIGN_OR_RETURN(auto source, ImportSource::open(job.model_dir(), root, eval));
  const ModelDescription& desc = source->desc();

  // The token ids (calibration or evaluation): read now, stored as the auxiliary shard.
  std::optional<TokenBatch> ids;
  std::vector<int32_t> spans;  // a multiple-choice evaluation's
  ChoicePlan choices;
  if (settings.eval && !settings.eval->choices.empty()) {
    SP_ASSIGN_OR_RETURN(const auto tokenizer, model_tokenizer(job.spec().eval().tokenizer().empty()
                                                                  ? job.model_dir()
                                                                  : job.spec().eval().tokenizer()));
    SP_ASSIGN_OR_RETURN(const auto items, read_choice_items(settings.eval->choices, desc.config.vocab_size,
                                                            tokenizer ? &*tokenizer : nullptr, settings.eval->samples));
    ChoiceBatch b = choice_batch(items);
    ids = TokenBatch{b.sequences, b.tokens, std::move(b.ids)};
    spans = std::move(b.spans);
    for (const auto& it : items) {
      choices.add_choices_per_item(static_cast<int32_t>(it.choices.size()));
      choices.add_answers(it.answer);
      for (int64_t bytes : it.choice_bytes) choices.add_choice_bytes(bytes);
    }
    job.set_model_config(desc.config.raw.dump());
    job.set_hidden_size(desc.config.hidden_size);
  } else if (settings.calibration || settings.eval) {
    const std::string& file = eval ? settings.eval->ids : settings.calibration->ids;
    const int64_t samples = eval ? settings.eval->samples : settings.calibration->samples;
    const int64_t seq_len = eval ? settings.eval->seq_len : settings.calibration->seq_len;
    SP_ASSIGN_OR_RETURN(ids, read_token_ids(file, desc.config.vocab_size, samples, seq_len));
    job.set_model_config(desc.config.raw.dump());  // without quantization_config
    job.set_hidden_size(desc.config.hidden_size);
  }
  if (job.plan().tasks_size() == 0) {
    std::optional<Imatrix> imatrix;  // format gguf: the importance values go into the plan
    if (!settings.gguf_imatrix.empty()) {
      SP_ASSIGN_OR_RETURN(imatrix, read_imatrix(settings.gguf_imatrix));
      SP_RETURN_IF_ERROR(weighted_gguf_targets(desc, settings, &*imatrix).status());  // changed since submit?
    }
    *job.mutable_plan() = plan_job(desc, settings, ids ? CalibrationShape{ids->sequences, ids->seq_len} : CalibrationShape{},
                                   imatrix ? &*imatrix : nullptr);
    if (!spans.empty()) *job.mutable_plan()->mutable_choices() = choices;
  } else {
    SP_RETURN_IF_ERROR(check_plan_fits(job.plan(), desc, job.model_dir()));  // a re-import keeps the plan
  }
  JobPlan& plan = *job.mutable_plan();
  // Tensors another job imported from the same unchanged file region are not read again.
  const KnownDigests known = hooks.known_digests && !hooks.copy ? hooks.known_digests() : KnownDigests{};
  std::map<std::string, int64_t> mtimes;  // per file, read once
  auto mtime_of = [&mtimes](const std::string& file) {
    auto it = mtimes.find(file);
    if (it != mtimes.end()) return it->second;
    std::error_code ec;
    const auto t = std::filesystem::last_write_time(file, ec);
    const int64_t ns = ec ? 0 : std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    return mtimes[file] = ns;
  };
  size_t reused = 0;
  size_t total = 0, done = 0;
  for (const auto& s : plan.shards()) total += static_cast<size_t>(s.tensors_size());
  for (int index = 0; index < plan.shards_size(); ++index) {
    ShardPlan& shard = *plan.mutable_shards(index);
    for (int attempt = 0;; ++attempt) {
      for (auto& m : *shard.mutable_tensors()) {
        if (!hooks.running()) return absl::CancelledError("job no longer running");
        hooks.phase(fmt::format("importing {}/{}", done, total));
        if (shard.auxiliary()) {
          const std::vector<int32_t>& v = m.name() == kChoiceSpansTensor ? spans : ids->ids;
          const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4);
          m.set_digest(digest_hex(bytes));
          SP_RETURN_IF_ERROR(blobs.put(m.digest(), bytes, BlobStore::Durability::kUnlogged));
        } else {
          SP_ASSIGN_OR_RETURN(ImportSource::Tensor t, source->read(m.name()));
          const int64_t mtime = t.file.empty() ? 0 : mtime_of(t.file);
          const auto hit = t.file.empty() || mtime == 0
                               ? known.end()
                               : known.find(SourceKey{t.file, t.offset, t.bytes.size(), mtime});
          // Known bytes (another job's import digested this file region; its blob exists):
          // neither read nor checked again.
          const bool known_bytes = hit != known.end() && blobs.contains(hit->second).value_or(false);
          reused += known_bytes;
          // Shards outside the layers go to the output as they are: they must be finite.
          if (!shard.is_layer() && !known_bytes)
            SP_RETURN_IF_ERROR(check_finite(m.name(), t.bytes, t.dtype,
                                            std::vector<int64_t>(m.shape().begin(), m.shape().end())));
          m.set_dtype(std::string(dtype_name(t.dtype)));
          m.set_digest(known_bytes ? hit->second : digest_hex(t.bytes));
          m.set_nbytes(t.bytes.size());
          // The source is the store: a tensor read in place is a reference to its file's
          // bytes; a decoded one (an evaluated checkpoint) is stored, without WAL or sync
          // (recovery re-imports what a crash lost).
          if (t.file.empty() || hooks.copy)
            SP_RETURN_IF_ERROR(blobs.put(m.digest(), t.bytes, BlobStore::Durability::kUnlogged));
          else
            SP_RETURN_IF_ERROR(blobs.put_reference(m.digest(), t.file, t.offset, t.bytes.size()));
          m.set_source_file(t.file);  // empty for decoded tensors: always fetched
          m.set_source_offset(t.offset);
          m.set_source_mtime_ns(mtime);
          source->release(m.name());
        }
        ++done;
        if (hooks.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(hooks.delay_ms));
      }
      const absl::Status st = hooks.commit(job, index, index + 1 == plan.shards_size(), reused);
      if (st.ok()) break;
      // A blob deleted meanwhile (its last other owner went): write the shard again.
      if (!absl::IsUnavailable(st) || attempt + 1 >= kMissingBlobRetries) return st;
      done -= static_cast<size_t>(shard.tensors_size());
    }
  }
  return absl::OkStatus();
}

}  // namespace sp
