// The coordinator's CLI API: submit, status, list, cancel, resume, delete, workers, events.
// Each mutation validates, commits one batch and only then changes memory (commit()).
#include "checkpoint/gguf_export.h"
#include "coordinator/coordinator.h"

#include "coordinator/blob_owners.h"
#include "coordinator/records.h"
#include "fmt/format.h"
#include <filesystem>

#include "common/confined_path.h"
#include "coordinator/import_source.h"
#include "formats/choice_items.h"
#include "formats/token_ids.h"
#include "jobs/job_plan.h"
#include "jobs/job_settings.h"

namespace sp {

namespace fs = std::filesystem;
using namespace shardpress::v1;  // NOLINT: the record types

namespace {

// Where a job may read `path`: under the model root; an evaluation also under the output
// root, since it scores what jobs wrote there.
struct Readable {
  std::string path;  // resolved
  std::string root;  // the root it lies in
};
absl::StatusOr<Readable> resolve_readable(const CoordinatorOptions& o, const std::string& path, bool eval,
                                          const char* what) {
  auto in_models = resolve_under(path, o.model_root, what);
  if (in_models.ok() || !eval || !absl::IsPermissionDenied(in_models.status()))
    return in_models.ok() ? absl::StatusOr<Readable>(Readable{*in_models, o.model_root}) : in_models.status();
  auto in_outputs = resolve_under(path, o.output_root, what);
  if (in_outputs.ok()) return Readable{*in_outputs, o.output_root};
  if (!absl::IsPermissionDenied(in_outputs.status())) return in_outputs.status();
  return absl::PermissionDeniedError(fmt::format("{} {} is outside the coordinator's allowed roots {} and {}", what,
                                                 path, o.model_root, o.output_root));
}


}  // namespace

absl::StatusOr<Coordinator::Prepared> Coordinator::prepare(const JobSpec& spec_in) const {
  Prepared p{spec_in, ""};
  JobSpec& spec = p.spec;
  SP_RETURN_IF_ERROR(validate_job_spec(spec));
  const bool eval = is_eval_job(spec);
  SP_ASSIGN_OR_RETURN(const Readable model, resolve_readable(options_, spec.model(), eval, "model"));
  spec.set_model(model.path);
  p.model_root = model.root;
  if (!eval) {
    SP_ASSIGN_OR_RETURN(const std::string output, resolve_under(spec.output(), options_.output_root, "output"));
    spec.set_output(output);
  }
  if (eval && !spec.eval().choices().empty()) {
    SP_ASSIGN_OR_RETURN(const Readable items, resolve_readable(options_, spec.eval().choices(), eval, "choices"));
    spec.mutable_eval()->set_choices(items.path);
    if (!spec.eval().tokenizer().empty()) {
      SP_ASSIGN_OR_RETURN(const Readable tok, resolve_readable(options_, spec.eval().tokenizer(), eval, "tokenizer"));
      spec.mutable_eval()->set_tokenizer(tok.path);
    }
  } else if (eval) {
    SP_ASSIGN_OR_RETURN(const Readable ids, resolve_readable(options_, spec.eval().ids(), eval, "evaluation ids"));
    spec.mutable_eval()->set_ids(ids.path);
  } else if (spec_needs_calibration(spec)) {
    SP_ASSIGN_OR_RETURN(const std::string ids,
                        resolve_under(spec.calibrate().ids(), options_.model_root, "calibration ids"));
    spec.mutable_calibrate()->set_ids(ids);
  }
  if (!spec.evaluate().ids().empty()) {
    SP_ASSIGN_OR_RETURN(const std::string ids,
                        resolve_under(spec.evaluate().ids(), options_.model_root, "evaluation ids"));
    spec.mutable_evaluate()->set_ids(ids);
  }
  if (!spec.evaluate().choices().empty()) {
    SP_ASSIGN_OR_RETURN(const std::string items,
                        resolve_under(spec.evaluate().choices(), options_.model_root, "evaluation choices"));
    spec.mutable_evaluate()->set_choices(items);
  }
  if (!spec.quantize().imatrix().empty()) {
    SP_ASSIGN_OR_RETURN(const std::string imatrix,
                        resolve_under(spec.quantize().imatrix(), options_.model_root, "importance matrix"));
    spec.mutable_quantize()->set_imatrix(imatrix);
  }
  return p;
}

absl::StatusOr<JobSpec> Coordinator::normalize_spec(const JobSpec& spec) const {
  SP_ASSIGN_OR_RETURN(Prepared p, prepare(spec));
  return p.spec;
}

absl::StatusOr<std::string> Coordinator::readable_root(const JobRecord& j) const {
  SP_ASSIGN_OR_RETURN(const Readable r, resolve_readable(options_, j.model_dir(), is_eval_job(j.spec()), "model"));
  return r.root;
}

absl::StatusOr<JobStatus> Coordinator::submit(const JobSpec& spec_in) {
  SP_ASSIGN_OR_RETURN(Prepared prepared, prepare(spec_in));
  const JobSpec& spec = prepared.spec;
  const bool eval = is_eval_job(spec);
  const std::string output_dir = eval ? "" : spec.output();
  std::error_code ec;
  if (!eval && fs::exists(output_dir, ec) && !spec.overwrite())
    return absl::FailedPreconditionError(fmt::format(
        "output {} already exists; choose a new folder (or set overwrite: true to replace it)", output_dir));
  // Read config.json and the safetensors headers now: a bad model is rejected at submit
  // (an evaluation may also read a shardpress NF4 checkpoint, verified here); the text
  // is checked now, not hours later.
  SP_ASSIGN_OR_RETURN(auto source, ImportSource::open(spec.model(), prepared.model_root, /*allow_checkpoint=*/eval));
  const int64_t vocab = source->desc().config.vocab_size;
  if (eval && !spec.eval().choices().empty()) {
    SP_ASSIGN_OR_RETURN(const auto tokenizer,
                        model_tokenizer(spec.eval().tokenizer().empty() ? spec.model() : spec.eval().tokenizer()));
    SP_RETURN_IF_ERROR(read_choice_items(spec.eval().choices(), vocab, tokenizer ? &*tokenizer : nullptr,
                                         spec.eval().samples())
                           .status());
  } else if (eval) {
    SP_RETURN_IF_ERROR(read_token_ids(spec.eval().ids(), vocab, spec.eval().samples(), spec.eval().seq_len()).status());
  }
  else if (spec_needs_calibration(spec))
    SP_RETURN_IF_ERROR(
        read_token_ids(spec.calibrate().ids(), vocab, spec.calibrate().samples(), spec.calibrate().seq_len()).status());
  if (!spec.evaluate().ids().empty())
    SP_RETURN_IF_ERROR(
        read_token_ids(spec.evaluate().ids(), vocab, spec.evaluate().samples(), spec.evaluate().seq_len()).status());
  if (!spec.evaluate().choices().empty()) {
    SP_ASSIGN_OR_RETURN(const auto tokenizer, model_tokenizer(spec.model()));
    SP_RETURN_IF_ERROR(read_choice_items(spec.evaluate().choices(), vocab, tokenizer ? &*tokenizer : nullptr,
                                         spec.evaluate().samples())
                           .status());
  }

  // Format gguf: the file's header and every tensor's type can be made (a SentencePiece
  // vocabulary, an architecture llama.cpp names); rows that fit no block are reported.
  std::vector<std::string> gguf_fallbacks;
  if (!eval && spec.quantize().format() == "gguf") {
    SP_ASSIGN_OR_RETURN(const JobSettings settings, job_settings(spec));
    SP_RETURN_IF_ERROR(gguf_metadata(spec.model(), source->desc().config, *settings.compress.gguf).status());
    std::optional<Imatrix> imatrix;  // read again at import; a file that will not do is refused now
    if (!settings.gguf_imatrix.empty()) {
      SP_ASSIGN_OR_RETURN(imatrix, read_imatrix(settings.gguf_imatrix));
    }
    SP_ASSIGN_OR_RETURN(const auto targets,
                        weighted_gguf_targets(source->desc(), settings, imatrix ? &*imatrix : nullptr));
    for (const auto& t : targets)
      if (!t.fallback.empty()) gguf_fallbacks.push_back(t.fallback);
  }

  std::lock_guard lock(mu_);
  SP_RETURN_IF_ERROR(jobs_.check_new(spec.name(), output_dir));
  JobRecord j;
  j.set_seq(jobs_.next_seq());
  j.set_id(fmt::format("job-{:04d}", j.seq()));
  *j.mutable_spec() = spec;
  j.set_state(QUEUED);
  j.set_created_ms(clock_.now_ms());
  j.set_model_dir(spec.model());
  j.set_output_dir(output_dir);
  Change c;
  c.batch.put(Table::kMeta, kNextSeqKey, std::to_string(j.seq() + 1));
  add_event(c, j.id(), eval ? fmt::format("submitted '{}': {} of {} on {}", spec.name(),
                                          spec.eval().choices().empty() ? "perplexity" : "multiple-choice accuracy",
                                          spec.model(),
                                          spec.eval().choices().empty() ? spec.eval().ids() : spec.eval().choices())
                            : fmt::format("submitted '{}': {} -> {}, {}", spec.name(), spec.model(), output_dir,
                                          describe_spec(spec)));
  for (size_t i = 0; i < gguf_fallbacks.size() && i < 20; ++i) add_event(c, j.id(), "GGUF fallback: " + gguf_fallbacks[i]);
  if (gguf_fallbacks.size() > 20)
    add_event(c, j.id(), fmt::format("GGUF fallback: ... and {} more tensors (inspect --format gguf lists them)",
                                     gguf_fallbacks.size() - 20));
  SP_RETURN_IF_ERROR(stage(c, j, {}));
  SP_RETURN_IF_ERROR(commit(c));
  cv_.notify_all();
  return job_status_view(j, {}, "", workers_, clock_.now_ms(), true);
}

absl::StatusOr<JobStatus> Coordinator::job_status(const std::string& ref, bool with_tasks) {
  std::lock_guard lock(mu_);
  SP_ASSIGN_OR_RETURN(const JobRecord* j, jobs_.find(ref));
  return view_locked(*j, with_tasks);
}

JobStatus Coordinator::view_locked(const JobRecord& j, bool with_tasks) const {
  auto ph = phase_.find(j.id());
  JobStatus s = job_status_view(j, scheduler_.tasks_of(j.id()), ph == phase_.end() ? "" : ph->second, workers_,
                                clock_.now_ms(), with_tasks);
  if (j.has_evaluation()) {
    *s.mutable_evaluation() = evaluation_view_locked(j);
    if (j.state() == EVALUATING) {
      std::string waiting;
      for (const std::string& id : {s.evaluation().original_job(), s.evaluation().output_job(),
                                    s.evaluation().original_choices_job(), s.evaluation().output_choices_job()})
        if (const JobRecord* k = id.empty() ? nullptr : jobs_.get(id); k && !job_terminal(k->state()))
          waiting += fmt::format("{}{} {}", waiting.empty() ? "" : ", ", id, job_state_text(k->state()));
      s.set_phase(waiting.empty() ? "evaluating" : "evaluating: " + waiting);
    }
  }
  s.set_evaluates(j.evaluates());
  return s;
}

std::vector<JobStatus> Coordinator::list_jobs() {
  std::lock_guard lock(mu_);
  std::vector<JobStatus> out;
  for (const JobRecord* j : jobs_.in_order()) out.push_back(view_locked(*j, false));
  return out;
}

absl::StatusOr<JobStatus> Coordinator::cancel(const std::string& ref) {
  std::lock_guard lock(mu_);
  SP_ASSIGN_OR_RETURN(const JobRecord* j, jobs_.find(ref));
  if (job_terminal(j->state()))
    return absl::FailedPreconditionError(fmt::format("job {} is already {}", j->id(), job_state_name(j->state())));
  const std::string id = j->id();
  Change c;
  SP_RETURN_IF_ERROR(finish(c, *j, CANCELLED, ""));
  for (const JobRecord* k : evaluation_jobs_locked(id))  // its evaluation stops with it
    if (!job_terminal(k->state())) SP_RETURN_IF_ERROR(finish(c, *k, CANCELLED, fmt::format("{} was cancelled", id)));
  SP_RETURN_IF_ERROR(commit(c));
  cv_.notify_all();
  return view_locked(*jobs_.get(id), true);
}

absl::StatusOr<JobStatus> Coordinator::resume(const std::string& ref) {
  std::lock_guard lock(mu_);
  SP_ASSIGN_OR_RETURN(const JobRecord* found, jobs_.find(ref));
  const std::string id = found->id();
  if (found->state() == SUCCEEDED)
    return absl::FailedPreconditionError(fmt::format("job {} already succeeded: {}", id, found->output_dir()));
  if (!job_terminal(found->state()))  // running or queued: nothing to do
    return view_locked(*found, true);
  std::error_code ec;
  if (found->has_evaluation() && fs::exists(found->output_dir(), ec)) {  // the output is written: evaluate again
    if (found->evaluation().done())
      return absl::FailedPreconditionError(fmt::format(
          "job {} was evaluated: {}; its output is at {}. Change the settings and submit a new job", id,
          found->error(), found->output_dir()));
    Change c;
    add_event(c, id, "resumed: evaluating the output again");
    SP_RETURN_IF_ERROR(stage_evaluation(c, *found, evaluation_cache_keys(*found)));
    SP_RETURN_IF_ERROR(commit(c));
    cv_.notify_all();
    return view_locked(*jobs_.get(id), true);
  }
  if (!found->output_dir().empty() && fs::exists(found->output_dir(), ec) && !found->spec().overwrite())
    return absl::FailedPreconditionError(
        fmt::format("output {} exists now; move it away to resume", found->output_dir()));
  JobRecord j = *found;
  size_t kept = 0;
  for (const auto* t : scheduler_.tasks_of(id)) kept += t->state() == DONE;
  j.set_state(QUEUED);
  j.set_error("");
  j.set_finished_ms(0);
  Change c;
  add_event(c, id, fmt::format("resumed, keeping {} finished task{}", kept, kept == 1 ? "" : "s"));
  SP_RETURN_IF_ERROR(stage(c, j, scheduler_.unfinished_reset(id)));
  SP_RETURN_IF_ERROR(commit(c));
  cv_.notify_all();
  return view_locked(*jobs_.get(id), true);
}

absl::StatusOr<JobStatus> Coordinator::delete_job(const std::string& ref) {
  std::lock_guard lock(mu_);
  SP_ASSIGN_OR_RETURN(const JobRecord* j, jobs_.find(ref));
  if (!job_terminal(j->state()))
    return absl::FailedPreconditionError(
        fmt::format("job {} is {}: cancel it first (deleting keeps nothing to resume from)", j->id(),
                    job_state_name(j->state())));
  const JobStatus last = view_locked(*j, false);
  Change c;
  SP_RETURN_IF_ERROR(stage_delete(c, *j));
  for (const JobRecord* k : evaluation_jobs_locked(j->id()))  // its evaluation jobs go with it
    if (job_terminal(k->state())) SP_RETURN_IF_ERROR(stage_delete(c, *k));
  SP_RETURN_IF_ERROR(commit(c));
  cv_.notify_all();  // the runner gives the space back
  return last;
}

std::vector<WorkerInfo> Coordinator::workers() {
  std::lock_guard lock(mu_);
  std::vector<WorkerInfo> out;
  for (const auto& [id, w] : workers_.all()) {
    std::vector<std::string> held;
    for (const JobRecord* j : jobs_.in_order())
      for (const auto* t : scheduler_.tasks_of(j->id()))
        if (t->state() == LEASED && t->worker_id() == id) held.push_back(t->id());
    out.push_back(worker_view(w, workers_.alive(w), held));
  }
  return out;
}

absl::StatusOr<std::vector<EventRecord>> Coordinator::events(const std::string& ref) {
  std::string id;
  {
    std::lock_guard lock(mu_);
    SP_ASSIGN_OR_RETURN(const JobRecord* j, jobs_.find(ref));
    id = j->id();
  }
  std::vector<EventRecord> out;
  SP_RETURN_IF_ERROR(store_->scan(Table::kEvents, id + "/", [&](std::string_view, std::string_view v) {
    EventRecord e;
    if (e.ParseFromArray(v.data(), static_cast<int>(v.size()))) out.push_back(std::move(e));
    return true;
  }));
  return out;
}

}  // namespace sp
