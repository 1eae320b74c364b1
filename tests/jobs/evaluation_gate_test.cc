// The `evaluate:` section (parsed and validated once) and the gate's plain functions.
#include "jobs/evaluation_gate.h"

#include <cmath>
#include <limits>

#include "common/file_util.h"
#include "gtest/gtest.h"
#include "jobs/job_settings.h"
#include "jobs/job_yaml.h"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

using namespace shardpress::v1;  // NOLINT

std::string err(const std::string& yaml) {
  auto r = parse_job_yaml(yaml, "job.yaml");
  return r.ok() ? "" : std::string(r.status().message());
}

TEST(EvaluateSpec, ParsedValidatedAndPartOfTheDigest) {
  auto s = parse_job_yaml("model: m\noutput: o\nevaluate: {ids: e.txt, samples: 16, seq_len: 128, max_ppl_increase: 0.05}\n",
                          "job.yaml");
  ASSERT_TRUE(s.ok()) << s.status();
  auto settings = job_settings(*s);
  ASSERT_TRUE(settings.ok()) << settings.status();
  ASSERT_TRUE(settings->evaluate);
  EXPECT_EQ(settings->evaluate->ids, "e.txt");
  EXPECT_EQ(settings->evaluate->samples, 16);
  EXPECT_EQ(settings->evaluate->seq_len, 128);
  EXPECT_EQ(settings->max_ppl_increase, 0.05);
  // No gate: the numbers are only recorded.
  auto plain = parse_job_yaml("model: m\noutput: o\nevaluate: {ids: e.txt}\n", "job.yaml");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(job_settings(*plain)->max_ppl_increase);
  EXPECT_FALSE(job_settings(*parse_job_yaml("model: m\noutput: o\n", "job.yaml"))->evaluate);
  EXPECT_NE(spec_digest(*plain), spec_digest(*s));
  EXPECT_EQ(spec_differences(*plain, *s).size(), 3u);  // samples, seq_len, max_ppl_increase

  EXPECT_NE(err("model: m\noutput: o\nevaluate: {samples: 4}\n").find("needs 'evaluate.ids'"), std::string::npos);
  EXPECT_NE(err("model: m\noutput: o\nevaluate: {choices: c.jsonl, max_ppl_increase: 1}\n")
                .find("'evaluate.max_ppl_increase' gates perplexity: it needs 'evaluate.ids'"),
            std::string::npos);
  auto choices = parse_job_yaml("model: m\noutput: o\nevaluate: {choices: c.jsonl, samples: 8}\n", "job.yaml");
  ASSERT_TRUE(choices.ok()) << choices.status();
  EXPECT_EQ(job_settings(*choices)->evaluate->choices, "c.jsonl");
  auto acc_gate = parse_job_yaml("model: m\noutput: o\nevaluate: {choices: c.jsonl, max_acc_decrease: 0.02}\n", "job.yaml");
  ASSERT_TRUE(acc_gate.ok()) << acc_gate.status();
  EXPECT_EQ(job_settings(*acc_gate)->max_acc_decrease, 0.02);
  EXPECT_NE(err("model: m\noutput: o\nevaluate: {ids: e.txt, max_acc_decrease: 0.1}\n")
                .find("'evaluate.max_acc_decrease' gates accuracy: it needs 'evaluate.choices'"),
            std::string::npos);
  EXPECT_NE(err("model: m\noutput: o\nevaluate: {choices: c, max_acc_decrease: 1.5}\n")
                .find("'evaluate.max_acc_decrease' is 1.5; expected 0 to 1"),
            std::string::npos);
  EXPECT_NE(err("model: m\noutput: o\nevaluate: {ids: e, max_ppl_increase: -1}\n").find("'evaluate.max_ppl_increase' is -1"),
            std::string::npos);
  EXPECT_NE(err("model: m\noutput: o\nevaluate: {ids: e, max_ppl_increase: .nan}\n").find("'evaluate.max_ppl_increase'"),
            std::string::npos);
  EXPECT_NE(err("model: m\noutput: o\nevaluate: {ids: e, seq_len: 1}\n").find("'evaluate.seq_len' is 1"),
            std::string::npos);
  EXPECT_NE(err("model: m\noutput: o\nevaluate: {ids: e, samples: -2}\n").find("'evaluate.samples' is -2"),
            std::string::npos);
  EXPECT_NE(err("model: m\noutput: o\nevaluate: {ids: e, gate: 1}\n").find("unknown key 'evaluate.gate'"),
            std::string::npos);
  JobSpec eval_job;
  eval_job.set_name("e");
  eval_job.set_model("m");
  eval_job.mutable_eval()->set_ids("e.txt");
  EXPECT_TRUE(validate_job_spec(eval_job).ok());
  eval_job.mutable_evaluate()->set_ids("e.txt");
  EXPECT_FALSE(validate_job_spec(eval_job).ok()) << "an evaluation job does not evaluate itself";
}

TEST(EvaluationGate, VerdictAndMessage) {
  EvalResult r;
  r.set_nll(200.0);
  r.set_predictions(100);
  EXPECT_DOUBLE_EQ(perplexity_of(r), std::exp(2.0));
  EXPECT_EQ(perplexity_of(EvalResult()), 0.0);

  GateVerdict v = judge_gate(4.7149, 4.9792, 0.3);
  EXPECT_TRUE(v.passed);
  EXPECT_EQ(v.message, "perplexity 4.9792 against the original's 4.7149 (+0.2643), within the gate of +0.3");
  v = judge_gate(4.7149, 4.9792, 0.25);
  EXPECT_FALSE(v.passed);
  EXPECT_EQ(v.message,
            "the output failed its evaluation gate: perplexity 4.9792 against the original's 4.7149 (+0.2643), over "
            "the allowed +0.25");
  EXPECT_TRUE(judge_gate(4.7, 4.6, 0).passed) << "better than the original passes any gate";
  EXPECT_TRUE(judge_gate(4.7, 9.0, std::nullopt).passed) << "no gate: only recorded";
  EXPECT_FALSE(judge_gate(4.7, std::numeric_limits<double>::quiet_NaN(), 1e9).passed) << "a broken output never passes";
  EXPECT_FALSE(judge_gate(4.7, std::numeric_limits<double>::infinity(), 1e9).passed);
}

TEST(EvaluationGate, AccuracyGateAndBothTogether) {
  ChoiceScore orig, out;
  orig.set_items(101);
  orig.set_acc(0.3564);
  out.set_items(101);
  out.set_acc(0.2871);
  GateVerdict v = judge_accuracy_gate(orig, out, 0.1);
  EXPECT_TRUE(v.passed);
  EXPECT_EQ(v.message, "accuracy 0.2871 against the original's 0.3564 (-0.0693, 101 items), within the gate of -0.1");
  v = judge_accuracy_gate(orig, out, 0.05);
  EXPECT_FALSE(v.passed);
  EXPECT_EQ(v.message, "the output failed its evaluation gate: accuracy 0.2871 against the original's 0.3564 (-0.0693, "
                       "101 items), over the allowed -0.05");
  EXPECT_TRUE(judge_accuracy_gate(orig, orig, 0).passed) << "the same accuracy passes a gate of 0";
  EXPECT_TRUE(judge_accuracy_gate(orig, out, std::nullopt).passed) << "no gate: only recorded";
  EXPECT_FALSE(judge_accuracy_gate(orig, ChoiceScore(), 1).passed) << "no items scored never passes";

  EvaluateSpec want;
  want.set_ids("e.txt");
  want.set_choices("c.jsonl");
  want.set_max_ppl_increase(0.3);
  want.set_max_acc_decrease(0.05);
  v = judge_evaluation(want, 4.7149, 4.9792, orig, out);
  EXPECT_FALSE(v.passed) << "perplexity within its gate, accuracy not";
  EXPECT_EQ(v.message,
            "the output failed its evaluation gate: perplexity 4.9792 against the original's 4.7149 (+0.2643), within "
            "the gate of +0.3; accuracy 0.2871 against the original's 0.3564 (-0.0693, 101 items), over the allowed "
            "-0.05");
  want.set_max_acc_decrease(0.1);
  v = judge_evaluation(want, 4.7149, 4.9792, orig, out);
  EXPECT_TRUE(v.passed);
  want.clear_ids();
  want.clear_max_ppl_increase();
  EXPECT_EQ(judge_evaluation(want, 0, 0, orig, out).message,
            "accuracy 0.2871 against the original's 0.3564 (-0.0693, 101 items), within the gate of -0.1")
      << "no perplexity asked: none in the message";
}

TEST(EvaluationGate, CacheKeyFollowsWeightsAndText) {
  test::TempDir d;
  test::write_text(d / "a.txt", "1 2 3\n4 5 6\n");
  test::write_text(d / "b.txt", "1 2 3\n4 5 7\n");
  JobPlan plan;
  auto* s = plan.add_shards();
  auto* t = s->add_tensors();
  t->set_name("w");
  t->set_digest("d1");
  auto* aux = plan.add_shards();  // calibration ids: not the model
  aux->set_auxiliary(true);
  aux->add_tensors()->set_name("ids");
  auto key = original_eval_cache_key(plan, d / "a.txt", 0, 0);
  ASSERT_TRUE(key.ok()) << key.status();
  test::write_text(d / "a-copy.txt", "1 2 3\n4 5 6\n");
  EXPECT_EQ(*original_eval_cache_key(plan, d / "a-copy.txt", 0, 0), *key) << "the text's bytes, not its path";
  EXPECT_NE(*original_eval_cache_key(plan, d / "b.txt", 0, 0), *key);
  EXPECT_NE(*original_eval_cache_key(plan, d / "a.txt", 1, 0), *key);
  EXPECT_NE(*original_eval_cache_key(plan, d / "a.txt", 0, 2), *key);
  JobPlan other = plan;
  other.mutable_shards(0)->mutable_tensors(0)->set_digest("d2");
  EXPECT_NE(*original_eval_cache_key(other, d / "a.txt", 0, 0), *key);
  other.mutable_shards(0)->mutable_tensors(0)->clear_digest();
  EXPECT_FALSE(original_eval_cache_key(other, d / "a.txt", 0, 0).ok()) << "not imported: no key";
  EXPECT_FALSE(original_eval_cache_key(plan, d / "missing.txt", 0, 0).ok());
}

TEST(EvaluationGate, ReportBesideAFileInsideAFolder) {
  test::TempDir d;
  std::filesystem::create_directories(d / "out");
  EXPECT_EQ(evaluation_report_path(d / "out"), d / "out/evaluation.json");
  EXPECT_EQ(evaluation_report_path(d / "m.gguf"), d / "m.gguf.evaluation.json");
}

}  // namespace
}  // namespace sp
