#include "jobs/evaluation_gate.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <vector>

#include "common/digest.h"
#include "common/file_util.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

namespace sp {

namespace fs = std::filesystem;
using namespace shardpress::v1;  // NOLINT: the record types

double perplexity_of(const EvalResult& r) {
  return r.predictions() > 0 ? std::exp(r.nll() / static_cast<double>(r.predictions())) : 0.0;
}

std::optional<ChoiceAccuracy> choice_accuracy_of(const JobPlan& plan, const EvalResult& result) {
  const ChoicePlan& c = plan.choices();
  if (c.choice_bytes_size() == 0 || result.logliks_size() != c.choice_bytes_size()) return std::nullopt;
  std::vector<ChoiceItem> items;
  std::vector<std::vector<double>> ll;
  int k = 0;
  for (int i = 0; i < c.choices_per_item_size() && i < c.answers_size(); ++i) {
    ChoiceItem it;
    it.answer = c.answers(i);
    std::vector<double> one;
    for (int j = 0; j < c.choices_per_item(i) && k < result.logliks_size(); ++j, ++k) {
      it.choice_bytes.push_back(c.choice_bytes(k));
      one.push_back(result.logliks(k));
    }
    items.push_back(std::move(it));
    ll.push_back(std::move(one));
  }
  return choice_accuracy(items, ll);
}

ChoiceScore choice_score(const ChoiceAccuracy& a) {
  ChoiceScore c;
  c.set_items(a.items);
  c.set_correct(a.correct);
  c.set_acc(a.acc);
  c.set_acc_stderr(a.acc_stderr);
  c.set_correct_norm(a.correct_norm);
  c.set_acc_norm(a.acc_norm);
  c.set_acc_norm_stderr(a.acc_norm_stderr);
  return c;
}

namespace {

constexpr char kFailed[] = "the output failed its evaluation gate: ";

// One gate's verdict: `numbers`, then where they stand against `limit` (none: no gate);
// the message without the failure prefix, which the whole verdict carries once.
GateVerdict verdict(std::string numbers, bool passed, std::optional<double> limit, char sign) {
  GateVerdict v{passed, std::move(numbers)};
  if (limit)
    v.message += passed ? fmt::format(", within the gate of {}{:g}", sign, *limit)
                        : fmt::format(", over the allowed {}{:g}", sign, *limit);
  return v;
}

GateVerdict perplexity_verdict(double original_ppl, double output_ppl, std::optional<double> max_increase) {
  const double increase = output_ppl - original_ppl;
  // A NaN perplexity (a broken output) never passes a gate.
  const bool passed = !max_increase || (std::isfinite(output_ppl) && increase <= *max_increase);
  return verdict(fmt::format("perplexity {:.4f} against the original's {:.4f} ({:+.4f})", output_ppl, original_ppl,
                             increase),
                 passed, max_increase, '+');
}

GateVerdict accuracy_verdict(const ChoiceScore& original, const ChoiceScore& output, std::optional<double> max_decrease) {
  const double change = output.acc() - original.acc();
  const bool passed =
      !max_decrease || (output.items() > 0 && std::isfinite(output.acc()) && -change <= *max_decrease + 1e-12);
  return verdict(fmt::format("accuracy {:.4f} against the original's {:.4f} ({:+.4f}, {} items)", output.acc(),
                             original.acc(), change, output.items()),
                 passed, max_decrease, '-');
}

GateVerdict prefixed(GateVerdict v) {
  if (!v.passed) v.message = kFailed + v.message;
  return v;
}

}  // namespace

GateVerdict judge_gate(double original_ppl, double output_ppl, std::optional<double> max_increase) {
  return prefixed(perplexity_verdict(original_ppl, output_ppl, max_increase));
}

GateVerdict judge_accuracy_gate(const ChoiceScore& original, const ChoiceScore& output,
                                std::optional<double> max_decrease) {
  return prefixed(accuracy_verdict(original, output, max_decrease));
}

GateVerdict judge_evaluation(const EvaluateSpec& want, double original_ppl, double output_ppl,
                             const ChoiceScore& original_acc, const ChoiceScore& output_acc) {
  std::vector<GateVerdict> parts;
  if (!want.ids().empty())
    parts.push_back(perplexity_verdict(original_ppl, output_ppl,
                                       want.has_max_ppl_increase() ? std::optional(want.max_ppl_increase())
                                                                   : std::nullopt));
  if (!want.choices().empty())
    parts.push_back(accuracy_verdict(original_acc, output_acc,
                                     want.has_max_acc_decrease() ? std::optional(want.max_acc_decrease())
                                                                 : std::nullopt));
  GateVerdict v;
  std::vector<std::string> lines;
  for (const GateVerdict& p : parts) {
    v.passed = v.passed && p.passed;
    lines.push_back(p.message);
  }
  v.message = fmt::format("{}", fmt::join(lines, "; "));
  return prefixed(std::move(v));
}

absl::StatusOr<std::string> original_eval_cache_key(const JobPlan& plan, const std::string& ids_path, int32_t samples,
                                                    int32_t seq_len) {
  std::vector<std::string> digests;
  for (const auto& s : plan.shards()) {
    if (s.auxiliary()) continue;
    for (const auto& t : s.tensors()) {
      if (t.digest().empty())
        return absl::FailedPreconditionError(fmt::format("{} was not imported: no digest to key the evaluation by", t.name()));
      digests.push_back(t.name() + "=" + t.digest());
    }
  }
  std::sort(digests.begin(), digests.end());
  SP_ASSIGN_OR_RETURN(const std::string ids, read_file(ids_path));
  Digester d;
  auto add = [&d](std::string_view s) {
    d.update({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
    d.update({reinterpret_cast<const uint8_t*>("\n"), 1});
  };
  for (const auto& x : digests) add(x);
  add(digest_hex({reinterpret_cast<const uint8_t*>(ids.data()), ids.size()}));
  add(fmt::format("samples={} seq_len={}", samples, seq_len));
  return d.hex();
}

std::string evaluation_report_path(const std::string& output) {
  std::error_code ec;
  return fs::is_directory(output, ec) ? (fs::path(output) / "evaluation.json").string() : output + ".evaluation.json";
}

std::string evaluation_report_json(const JobRecord& job) {
  const EvaluationRecord& e = job.evaluation();
  const double orig = perplexity_of(e.original()), out = perplexity_of(e.output());
  nlohmann::ordered_json j;
  j["job"] = job.id();
  j["name"] = job.spec().name();
  j["model"] = job.model_dir();
  j["output"] = job.output_dir();
  j["ids"] = job.spec().evaluate().ids();
  j["samples"] = job.spec().evaluate().samples();
  j["seq_len"] = job.spec().evaluate().seq_len();
  j["predictions"] = e.output().predictions();
  j["original_perplexity"] = orig;
  j["perplexity"] = out;
  j["increase"] = out - orig;
  if (job.spec().evaluate().has_max_ppl_increase())
    j["max_ppl_increase"] = job.spec().evaluate().max_ppl_increase();
  else
    j["max_ppl_increase"] = nullptr;
  if (!job.spec().evaluate().choices().empty()) {
    j["choices"] = job.spec().evaluate().choices();
    j["items"] = e.output_choices().items();
    j["original_acc"] = e.original_choices().acc();
    j["acc"] = e.output_choices().acc();
    j["acc_stderr"] = e.output_choices().acc_stderr();
    j["original_acc_norm"] = e.original_choices().acc_norm();
    j["acc_norm"] = e.output_choices().acc_norm();
    if (job.spec().evaluate().has_max_acc_decrease())
      j["max_acc_decrease"] = job.spec().evaluate().max_acc_decrease();
    else
      j["max_acc_decrease"] = nullptr;
  }
  j["passed"] = e.passed();
  j["original_cached"] = e.original_cached();
  j["original_job"] = e.original_job();
  j["output_job"] = e.output_job();
  return j.dump(2) + "\n";
}

}  // namespace sp
