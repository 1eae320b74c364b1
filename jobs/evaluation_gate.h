// A compression job's evaluation (spec `evaluate:`), the parts that are plain functions:
// perplexity from an evaluation's sums, the gate's verdict and message, the key that caches
// an original model's result, and the report written next to the output.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>

#include "common/status.h"
#include "ops/choice_scoring.h"
#include "shardpress.pb.h"

namespace sp {

// exp(nll / predictions); 0 when nothing was predicted.
double perplexity_of(const shardpress::v1::EvalResult& r);

// A multiple-choice evaluation's accuracy from its plan's items and its result's
// log-likelihoods; none while (or if) the result does not cover every sequence.
std::optional<ChoiceAccuracy> choice_accuracy_of(const shardpress::v1::JobPlan& plan,
                                                 const shardpress::v1::EvalResult& result);

// The accuracy as the records and statuses carry it.
shardpress::v1::ChoiceScore choice_score(const ChoiceAccuracy& a);

struct GateVerdict {
  bool passed = true;
  std::string message;  // one line with both numbers, for the job's error or event
};
// The output's perplexity against the original's, under `max_increase` (perplexity points;
// none: no gate, always passed).
GateVerdict judge_gate(double original_ppl, double output_ppl, std::optional<double> max_increase);
// The output's multiple-choice accuracy against the original's, under `max_decrease`
// (accuracy points, 0..1; none: no gate).
GateVerdict judge_accuracy_gate(const shardpress::v1::ChoiceScore& original, const shardpress::v1::ChoiceScore& output,
                                std::optional<double> max_decrease);
// The whole evaluation as `want` asks for it: perplexity (when ids are given) and accuracy
// (when choices are), each under its gate; passed when every gate holds, the message one
// line with every number (prefixed "the output failed its evaluation gate: " when not).
GateVerdict judge_evaluation(const shardpress::v1::EvaluateSpec& want, double original_ppl, double output_ppl,
                             const shardpress::v1::ChoiceScore& original_acc, const shardpress::v1::ChoiceScore& output_acc);

// The key an original model's evaluation is cached under: the digests of every model
// tensor the job imported (its plan's non-auxiliary shards), the token ids' bytes, samples
// and seq_len. Two jobs on the same weights and text share it, wherever the files lie.
// FAILED_PRECONDITION when the plan has a tensor without a digest (not imported).
absl::StatusOr<std::string> original_eval_cache_key(const shardpress::v1::JobPlan& plan, const std::string& ids_path,
                                                    int32_t samples, int32_t seq_len);

// Where the report goes: `output/evaluation.json` for a folder, `output.evaluation.json`
// beside a file (a GGUF output).
std::string evaluation_report_path(const std::string& output);
// The report's JSON text (original and output perplexity, the increase, the gate, the
// evaluation jobs, passed).
std::string evaluation_report_json(const shardpress::v1::JobRecord& job);

}  // namespace sp
