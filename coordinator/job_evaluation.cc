// A compression job's evaluation (spec `evaluate:`): once its output is written, the job
// is EVALUATING and two evaluation jobs of its own run on the workers — one of the output,
// one of the original model unless an earlier one on the same weights and text is cached —
// and when they end the job ends: SUCCEEDED within its gate, FAILED over it. The evaluation
// jobs are ordinary ones (resume, cancel, restart like any), linked by `evaluates`.
#include <filesystem>

#include "common/file_util.h"
#include "coordinator/coordinator.h"
#include "coordinator/records.h"
#include "fmt/format.h"
#include "jobs/evaluation_gate.h"
#include "jobs/job_settings.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT: the record types

std::vector<const JobRecord*> Coordinator::evaluation_jobs_locked(const std::string& parent_id) const {
  std::vector<const JobRecord*> out;
  for (const JobRecord* j : jobs_.in_order())
    if (j->evaluates() == parent_id) out.push_back(j);
  return out;
}

Coordinator::EvaluationKeys Coordinator::evaluation_cache_keys(const JobRecord& j) const {
  const auto& e = j.spec().evaluate();
  auto key = [&](const std::string& file, int32_t seq_len) -> std::string {
    if (file.empty()) return "";
    auto k = original_eval_cache_key(j.plan(), file, e.samples(), seq_len);
    if (k.ok()) return *k;
    log(fmt::format("{}: the original model's evaluation is not cached ({})", j.id(), std::string(k.status().message())));
    return "";
  };
  return {key(e.ids(), e.seq_len()), key(e.choices(), 0)};
}

absl::Status Coordinator::stage_evaluation(Change& c, JobRecord parent, const EvaluationKeys& keys) {
  // A resumed evaluation starts over: the jobs of the last one go, in this batch.
  for (const JobRecord* old : evaluation_jobs_locked(parent.id())) SP_RETURN_IF_ERROR(stage_delete(c, *old));
  const EvaluateSpec& want = parent.spec().evaluate();
  EvaluationRecord e;
  // The original's results, where an earlier job on the same weights and text left them.
  if (!keys.perplexity.empty()) {
    SP_ASSIGN_OR_RETURN(const auto cached, store_->get(Table::kMeta, kEvalCachePrefix + keys.perplexity));
    if (cached && e.mutable_original()->ParseFromString(*cached) && e.original().predictions() > 0)
      e.set_original_cached(true);
    else
      e.clear_original();
  }
  if (!keys.choices.empty()) {
    SP_ASSIGN_OR_RETURN(const auto cached, store_->get(Table::kMeta, kChoiceCachePrefix + keys.choices));
    if (cached && e.mutable_original_choices()->ParseFromString(*cached) && e.original_choices().items() > 0)
      e.set_original_choices_cached(true);
    else
      e.clear_original_choices();
  }
  uint64_t seq = jobs_.next_seq();
  auto add_job = [&](const std::string& what, const std::string& model, bool choices,
                     const std::string& key) -> absl::StatusOr<std::string> {
    JobSpec spec;
    spec.set_name(fmt::format("{}.eval-{}", parent.id(), what));
    spec.set_model(model);
    if (choices) {
      spec.mutable_eval()->set_choices(want.choices());
      spec.mutable_eval()->set_tokenizer(parent.model_dir());  // the original's: a GGUF output has no tokenizer.model
    } else
      spec.mutable_eval()->set_ids(want.ids());
    spec.mutable_eval()->set_samples(want.samples());
    spec.mutable_eval()->set_seq_len(choices ? 0 : want.seq_len());
    SP_ASSIGN_OR_RETURN(const Prepared prepared, prepare(spec));
    JobRecord k;
    k.set_seq(seq);
    k.set_id(fmt::format("job-{:04d}", seq++));
    *k.mutable_spec() = prepared.spec;
    k.set_state(QUEUED);
    k.set_created_ms(clock_.now_ms());
    k.set_model_dir(prepared.spec.model());
    k.set_evaluates(parent.id());
    k.set_eval_cache_key(key);
    add_event(c, k.id(), fmt::format("submitted by {}: {} of {} on {}", parent.id(),
                                     choices ? "multiple-choice accuracy" : "perplexity", prepared.spec.model(),
                                     choices ? want.choices() : want.ids()));
    SP_RETURN_IF_ERROR(stage(c, k, {}));
    return k.id();
  };
  std::vector<std::string> made;
  if (!want.ids().empty()) {
    if (!e.original_cached()) {
      SP_ASSIGN_OR_RETURN(const std::string id, add_job("original", parent.model_dir(), false, keys.perplexity));
      e.set_original_job(id);
      made.push_back(id + " (original)");
    }
    SP_ASSIGN_OR_RETURN(const std::string id, add_job("output", parent.output_dir(), false, ""));
    e.set_output_job(id);
    made.push_back(id + " (output)");
  }
  if (!want.choices().empty()) {
    if (!e.original_choices_cached()) {
      SP_ASSIGN_OR_RETURN(const std::string id, add_job("original-choices", parent.model_dir(), true, keys.choices));
      e.set_original_choices_job(id);
      made.push_back(id + " (original, choices)");
    }
    SP_ASSIGN_OR_RETURN(const std::string id, add_job("output-choices", parent.output_dir(), true, ""));
    e.set_output_choices_job(id);
    made.push_back(id + " (output, choices)");
  }
  c.batch.put(Table::kMeta, kNextSeqKey, std::to_string(seq));
  parent.set_state(EVALUATING);
  parent.set_error("");
  parent.set_finished_ms(0);
  *parent.mutable_evaluation() = e;
  std::string jobs;
  for (const auto& m : made) jobs += (jobs.empty() ? "" : ", ") + m;
  std::string cached;
  if (e.original_cached()) cached += fmt::format("; the original's perplexity {:.4f} is cached", perplexity_of(e.original()));
  if (e.original_choices_cached())
    cached += fmt::format("; the original's accuracy {:.4f} is cached", e.original_choices().acc());
  add_event(c, parent.id(), fmt::format("output written; evaluating: {}{}", jobs, cached));
  return stage(c, parent, {});
}

void Coordinator::settle_evaluations_locked() {
  for (const JobRecord* jp : jobs_.in_order()) {
    if (jp->state() != EVALUATING) continue;
    JobRecord j = *jp;
    EvaluationRecord& e = *j.mutable_evaluation();
    // Each evaluation job: its result once it succeeded, or why there will be none.
    std::string broken;
    bool pending = false;
    auto take = [&](const std::string& id, EvalResult* out) {
      if (id.empty()) return;
      const JobRecord* k = jobs_.get(id);
      if (!k) {
        broken = fmt::format("its evaluation job {} was deleted", id);
      } else if (k->state() == SUCCEEDED) {
        *out = k->result();
      } else if (job_terminal(k->state())) {
        broken = fmt::format("its evaluation job {} {}{}", id, job_state_name(k->state()),
                             k->error().empty() ? "" : ": " + k->error());
      } else {
        pending = true;
      }
    };
    if (!e.original_cached()) take(e.original_job(), e.mutable_original());
    take(e.output_job(), e.mutable_output());
    auto take_choices = [&](const std::string& id, ChoiceScore* out) {
      EvalResult r;
      take(id, &r);
      const JobRecord* k = id.empty() ? nullptr : jobs_.get(id);
      if (k && k->state() == SUCCEEDED) {
        const auto acc = choice_accuracy_of(k->plan(), r);
        if (acc) *out = choice_score(*acc);
        else broken = fmt::format("its evaluation job {} ended without an accuracy", id);
      }
    };
    if (!e.original_choices_cached()) take_choices(e.original_choices_job(), e.mutable_original_choices());
    take_choices(e.output_choices_job(), e.mutable_output_choices());
    Change c;
    if (!broken.empty()) {
      if (!finish(c, j, FAILED, fmt::format("the evaluation did not finish: {} (resume the job to evaluate again)", broken))
               .ok())
        continue;
    } else if (pending) {
      continue;
    } else {
      const auto& want = j.spec().evaluate();
      const GateVerdict v = judge_evaluation(j.spec().evaluate(), perplexity_of(e.original()),
                                             perplexity_of(e.output()), e.original_choices(), e.output_choices());
      e.set_done(true);
      e.set_passed(v.passed);
      // The report beside the output first (rewritten if the commit below fails), so that
      // a failed output is marked on disk.
      const std::string report = evaluation_report_path(j.output_dir());
      if (auto st = write_file_atomic(report, evaluation_report_json(j)); !st.ok())
        add_event(c, j.id(), fmt::format("could not write the evaluation report {}: {}", report, std::string(st.message())));
      if (v.passed) add_event(c, j.id(), "evaluated: " + v.message);
      if (!finish(c, j, v.passed ? SUCCEEDED : FAILED, v.passed ? "" : v.message).ok()) continue;
    }
    if (auto st = commit(c); !st.ok())
      log(fmt::format("{}: the end of its evaluation could not be recorded ({}); retrying", j.id(),
                      std::string(st.message())));
  }
}

Evaluation Coordinator::evaluation_view_locked(const JobRecord& j) const {
  Evaluation v;
  const EvaluationRecord& e = j.evaluation();
  v.set_original_job(e.original_job());
  v.set_output_job(e.output_job());
  v.set_original_cached(e.original_cached());
  v.set_done(e.done());
  v.set_passed(e.passed());
  auto result = [&](const std::string& id, const EvalResult& recorded) {
    if (recorded.predictions() > 0) return recorded;
    const JobRecord* k = id.empty() ? nullptr : jobs_.get(id);
    return k ? k->result() : EvalResult();
  };
  const EvalResult orig = result(e.original_job(), e.original()), out = result(e.output_job(), e.output());
  v.set_original_perplexity(perplexity_of(orig));
  v.set_perplexity(perplexity_of(out));
  v.set_predictions(out.predictions());
  v.set_original_choices_job(e.original_choices_job());
  v.set_output_choices_job(e.output_choices_job());
  v.set_original_choices_cached(e.original_choices_cached());
  auto score = [&](const std::string& id, const ChoiceScore& recorded, ChoiceScore* to) {
    if (recorded.items() > 0) {
      *to = recorded;
    } else if (const JobRecord* k = id.empty() ? nullptr : jobs_.get(id)) {
      if (const auto acc = choice_accuracy_of(k->plan(), k->result())) *to = choice_score(*acc);
    }
  };
  score(e.original_choices_job(), e.original_choices(), v.mutable_original_choice_score());
  score(e.output_choices_job(), e.output_choices(), v.mutable_choice_score());
  return v;
}

}  // namespace sp
