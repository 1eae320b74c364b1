// A compression job with `evaluate:` on real coordinator and worker processes: the output
// and the original model are scored by evaluation jobs on the workers (the original once
// per model and text: cached), the numbers equal `eval` in one process, a gate that does not
// hold fails the job with both numbers and leaves the output marked, and a coordinator
// killed in the middle of the evaluation resumes it to the same numbers.
#include <cmath>

#include "fmt/format.h"

#include "tests/e2e/cluster.h"

namespace sp {
namespace {

class EvaluationCluster : public Cluster {
 protected:
  void SetUp() override {
    Cluster::SetUp();
    fs::copy_file(test::fixture("stories260k/text/eval.ids.txt"), dir_ / "models/eval.ids.txt");
  }
  // An NF4 (round to nearest) job evaluated on 16 sequences, with a gate when `gate` >= 0.
  std::string write_evaluated_job(const std::string& name, double gate) {
    const std::string path = dir_ / (name + ".yaml");
    std::string text = "name: " + name + "\nmodel: " + (dir_ / "models/stories") + "\noutput: " +
                       (dir_ / ("out/" + name)) + "\nevaluate:\n  ids: " + (dir_ / "models/eval.ids.txt") +
                       "\n  samples: 16\n";
    if (gate >= 0) text += fmt::format("  max_ppl_increase: {}\n", gate);
    test::write_text(path, text);
    return path;
  }
  // Perplexity of `model` by `eval` in one process on the same 16 sequences.
  double local_perplexity(const std::string& model) {
    auto r = test::run_cli({"eval", model, "--ids", dir_ / "models/eval.ids.txt", "--samples", "16", "-o", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? std::exp(json::parse(r.out)["mean_nll"].get<double>()) : 0.0;
  }
  static bool ended(const json& s) {
    return s["state"] == "SUCCEEDED" || s["state"] == "FAILED" || s["state"] == "CANCELLED";
  }
};

TEST_F(EvaluationCluster, GateFailsWithBothNumbersPassingGateSucceedsOriginalIsCached) {
  start_coordinator();
  start_worker("a");
  start_worker("b");
  const double original = local_perplexity(dir_ / "models/stories");

  ASSERT_EQ(cli({"submit", write_evaluated_job("loose", 100)}).exit_code, 0);
  json s = wait_for("loose", ended, 60'000);
  ASSERT_EQ(s["state"], "SUCCEEDED") << s.dump();
  const json e = s["evaluation"];
  const double output = local_perplexity(dir_ / "out/loose");
  EXPECT_DOUBLE_EQ(e["original_perplexity"].get<double>(), original);
  EXPECT_DOUBLE_EQ(e["perplexity"].get<double>(), output);
  EXPECT_GT(output, original) << "NF4 should cost some perplexity on stories260k";
  EXPECT_EQ(e.value("passed", false), true);
  EXPECT_EQ(e.value("original_cached", false), false);
  EXPECT_EQ(e["predictions"], 16 * 255);
  // The evaluation jobs are ordinary jobs that say whose they are.
  EXPECT_EQ(status(e["original_job"])["evaluates"], s["id"]);
  EXPECT_EQ(status(e["output_job"])["state"], "SUCCEEDED");
  auto report = read_file(dir_ / "out/loose/evaluation.json");
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(json::parse(*report)["passed"], true);
  EXPECT_DOUBLE_EQ(json::parse(*report)["perplexity"].get<double>(), output);
  auto v = test::run_cli({"verify", dir_ / "out/loose", "--against", dir_ / "models/stories"});
  EXPECT_EQ(v.exit_code, 0) << "the report beside the checkpoint does not upset verify: " << v.out << v.err;

  // A gate of 0 cannot hold for NF4: FAILED, both numbers in the error, the output kept and
  // marked; the original's perplexity came from the cache (no second evaluation job of it).
  ASSERT_EQ(cli({"submit", write_evaluated_job("strict", 0)}).exit_code, 0);
  s = wait_for("strict", ended, 60'000);
  ASSERT_EQ(s["state"], "FAILED") << s.dump();
  const std::string err = s["error"];
  EXPECT_NE(err.find("failed its evaluation gate"), std::string::npos) << err;
  EXPECT_NE(err.find(fmt::format("{:.4f}", output)), std::string::npos) << err;
  EXPECT_NE(err.find(fmt::format("{:.4f}", original)), std::string::npos) << err;
  EXPECT_EQ(s["evaluation"].value("original_cached", false), true);
  EXPECT_EQ(s["evaluation"].value("original_job", ""), "");
  EXPECT_DOUBLE_EQ(s["evaluation"]["perplexity"].get<double>(), output);
  EXPECT_TRUE(fs::exists(dir_ / "out/strict/model.safetensors"));
  report = read_file(dir_ / "out/strict/evaluation.json");
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(json::parse(*report)["passed"], false);
  auto text = cli({"status", "strict"});
  EXPECT_NE(text.out.find("gate +0: FAILED"), std::string::npos) << text.out;
  // Resuming cannot change a verdict on the same output: refused, saying why.
  auto resumed = cli({"resume", "strict"});
  EXPECT_NE(resumed.exit_code, 0);
  EXPECT_NE(resumed.err.find("was evaluated"), std::string::npos) << resumed.err;
  // Deleting the job deletes its evaluation job too.
  const std::string output_job = s["evaluation"]["output_job"];
  ASSERT_EQ(cli({"delete", "strict"}).exit_code, 0);
  EXPECT_NE(cli({"status", output_job}).exit_code, 0) << output_job << " outlived its job";
}

TEST_F(EvaluationCluster, KillCoordinatorMidEvaluationCancelResumeSameNumbers) {
  start_coordinator();
  start_worker("a", "task=300");
  start_worker("b", "task=300");
  ASSERT_EQ(cli({"submit", write_evaluated_job("gated", 100)}).exit_code, 0);
  wait_for("gated", [](const json& s) { return s["state"] == "EVALUATING"; }, 60'000);
  coordinator_->kill(SIGKILL);
  coordinator_->wait();
  start_coordinator();
  // Restarted mid-evaluation (12 tasks of 300 ms are left); cancel stops its evaluation
  // jobs with it.
  json s = status("gated");
  ASSERT_EQ(s["state"], "EVALUATING") << s.dump();
  ASSERT_EQ(cli({"cancel", "gated"}).exit_code, 0);
  s = status("gated");
  EXPECT_EQ(s["state"], "CANCELLED");
  for (const char* k : {"original_job", "output_job"}) {
    ASSERT_FALSE(s["evaluation"].value(k, "").empty()) << k;
    EXPECT_TRUE(ended(status(s["evaluation"][k]))) << k << " still runs after its job was cancelled";
  }
  // Resume evaluates the written output again (no compression task runs again).
  auto r = cli({"resume", "gated"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(status("gated")["state"], "EVALUATING");
  s = wait_for("gated", ended, 90'000);
  ASSERT_EQ(s["state"], "SUCCEEDED") << s.dump();
  EXPECT_DOUBLE_EQ(s["evaluation"]["original_perplexity"].get<double>(), local_perplexity(dir_ / "models/stories"));
  EXPECT_DOUBLE_EQ(s["evaluation"]["perplexity"].get<double>(), local_perplexity(dir_ / "out/gated"));
  for (const auto& t : s["tasks"]) EXPECT_EQ(t["attempt"], 1) << t.dump();
}

}  // namespace
}  // namespace sp

namespace sp {
namespace {

// evaluate.max_acc_decrease: the accuracy gate. Magnitude 40 % costs 1 of the first 16
// stories items: a gate of 0.02 fails the job with every number (perplexity within its own
// gate, accuracy over), a gate of 0.1 lets the same output pass.
TEST_F(EvaluationCluster, AccuracyGateFailsWithEveryNumberAndPassesWhenLooser) {
  start_coordinator();
  start_worker("a");
  start_worker("b");
  ASSERT_EQ(std::system(("python3 " + std::string(SP_PROJECT_DIR) + "/scripts/make-stories-choices.py " +
                         test::fixture("stories260k/text/eval.txt") + " > " + (dir_ / "models/choices.jsonl"))
                            .c_str()),
            0);
  auto job = [&](const std::string& name, double gate) {
    const std::string path = dir_ / (name + ".yaml");
    test::write_text(path, "name: " + name + "\nmodel: " + (dir_ / "models/stories") + "\noutput: " +
                               (dir_ / ("out/" + name)) + "\nprune: {method: magnitude, sparsity: 0.4}\nevaluate:\n  ids: " +
                               (dir_ / "models/eval.ids.txt") + "\n  choices: " + (dir_ / "models/choices.jsonl") +
                               fmt::format("\n  samples: 16\n  max_ppl_increase: 10\n  max_acc_decrease: {}\n", gate));
    return path;
  };
  ASSERT_EQ(cli({"submit", job("strict", 0.02)}).exit_code, 0);
  const json s = wait_for("strict", ended, 90'000);
  ASSERT_EQ(s["state"], "FAILED") << s.dump();
  auto acc = [&](const std::string& model) {
    auto r = test::run_cli({"eval", model, "--choices", dir_ / "models/choices.jsonl", "--samples", "16", "-o", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? json::parse(r.out)["acc"].get<double>() : -1.0;
  };
  const double original_acc = acc(dir_ / "models/stories"), output_acc = acc(dir_ / "out/strict");
  const double original_ppl = local_perplexity(dir_ / "models/stories"), output_ppl = local_perplexity(dir_ / "out/strict");
  ASSERT_LT(output_acc, original_acc - 0.02) << "the test needs an output that loses accuracy";
  EXPECT_EQ(s["error"], fmt::format("the output failed its evaluation gate: perplexity {:.4f} against the original's "
                                    "{:.4f} ({:+.4f}), within the gate of +10; accuracy {:.4f} against the "
                                    "original's {:.4f} ({:+.4f}, 16 items), over the allowed -0.02",
                                    output_ppl, original_ppl, output_ppl - original_ppl, output_acc, original_acc,
                                    output_acc - original_acc));
  const json report = json::parse(*read_file(dir_ / "out/strict/evaluation.json"));
  EXPECT_EQ(report["passed"], false);
  EXPECT_EQ(report["max_acc_decrease"], 0.02);
  auto shown = cli({"status", "strict"});
  EXPECT_NE(shown.out.find(", gate -0.02"), std::string::npos) << shown.out;

  ASSERT_EQ(cli({"submit", job("loose", 0.1)}).exit_code, 0);
  const json l = wait_for("loose", ended, 90'000);
  EXPECT_EQ(l["state"], "SUCCEEDED") << l.dump();
  EXPECT_DOUBLE_EQ(l["evaluation"]["choice_score"]["acc"].get<double>(), output_acc);
}

// A sweep of four variants, each evaluated: the coordinator is SIGKILLed with part of it
// done, the sweep is cancelled and run again (resumed), and the report's numbers are what
// `eval` says of each output; the original model is evaluated once for all four.
TEST_F(EvaluationCluster, SweepSurvivesKillCancelAndResumeAndReportsWhatEvalSays) {
  start_coordinator();
  start_worker("a", "task=150");
  start_worker("b", "task=150");
  const std::string file = dir_ / "sw.yaml";
  ASSERT_EQ(std::system(("python3 " + std::string(SP_PROJECT_DIR) + "/scripts/make-stories-choices.py " +
                         test::fixture("stories260k/text/eval.txt") + " > " + (dir_ / "models/choices.jsonl"))
                            .c_str()),
            0);
  const std::string base = "name: sw\nbase:\n  model: " + (dir_ / "models/stories") + "\n  output: " + (dir_ / "out/sw") +
                           "\n  prune: {method: magnitude}\n  evaluate: {ids: " + (dir_ / "models/eval.ids.txt") +
                           ", choices: " + (dir_ / "models/choices.jsonl") + ", samples: 16}\n";
  test::write_text(file, base + "axes:\n  prune.sparsity: [0.2, 0.4]\n  quantize.format: [nf4, int8]\n");
  auto first = cli({"sweep", file});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_EQ(std::count(first.out.begin(), first.out.end(), '\n'), 4) << first.out;
  EXPECT_NE(first.out.find("sw.0.4-int8"), std::string::npos) << first.out;
  wait_for("sw.0.2-nf4", ended, 60'000);
  coordinator_->kill(SIGKILL);
  coordinator_->wait();
  start_coordinator();
  auto cancelled = cli({"sweep", file, "--cancel"});
  EXPECT_EQ(cancelled.exit_code, 0) << cancelled.err;
  EXPECT_NE(cancelled.out.find("cancelled"), std::string::npos) << "some variant was still to run: " << cancelled.out;
  auto again = cli({"sweep", file, "--wait"});
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_NE(again.out.find("resumed"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("kept"), std::string::npos) << again.out;

  auto report = cli({"report", file, "-o", "json", "--plot", dir_ / "sw.svg"});
  ASSERT_EQ(report.exit_code, 0) << report.err;
  const json r = json::parse(report.out);
  ASSERT_EQ(r["variants"].size(), 4u);
  int cached = 0;
  for (const auto& v : r["variants"]) {
    const std::string label = v["variant"];
    const std::string out = dir_ / ("out/sw/" + label);
    EXPECT_EQ(v["state"], "SUCCEEDED") << label;
    EXPECT_DOUBLE_EQ(v["perplexity"].get<double>(), local_perplexity(out)) << label;
    EXPECT_DOUBLE_EQ(v["original_perplexity"].get<double>(), local_perplexity(dir_ / "models/stories")) << label;
    uint64_t bytes = 0;
    for (const auto& e : fs::directory_iterator(out))
      if (e.path().filename() != "evaluation.json") bytes += e.file_size();
    EXPECT_EQ(v["bytes"].get<uint64_t>(), bytes) << label;
    EXPECT_GT(v["worker_s"].get<double>(), 0) << label;
    // The accuracy on the first 16 items, as `eval --choices` computes it in one process.
    auto acc = test::run_cli({"eval", out, "--choices", dir_ / "models/choices.jsonl", "--samples", "16", "-o", "json"});
    ASSERT_EQ(acc.exit_code, 0) << acc.err;
    EXPECT_EQ(v["items"], 16) << label;
    EXPECT_DOUBLE_EQ(v["acc"].get<double>(), json::parse(acc.out)["acc"].get<double>()) << label;
    const json e = status("sw." + label)["evaluation"];
    cached += e.value("original_cached", false) + e.value("original_choices_cached", false);
  }
  EXPECT_EQ(cached, 6) << "the original evaluated once (perplexity and accuracy) for four variants";
  // The model was read once: the later variants took every tensor's digest from the first
  // import (same file, offset, size and modification time).
  auto imported_line = [&](const std::string& job) {
    auto ev = cli({"events", job});
    const size_t at = ev.out.find("imported ");
    return at == std::string::npos ? std::string() : ev.out.substr(at, ev.out.find('\n', at) - at);
  };
  EXPECT_EQ(imported_line("sw.0.2-nf4").find("known from an earlier job"), std::string::npos)
      << imported_line("sw.0.2-nf4");
  for (const char* later : {"sw.0.2-int8", "sw.0.4-nf4", "sw.0.4-int8"})
    EXPECT_NE(imported_line(later).find("(47 known from an earlier job's import: not read again)"), std::string::npos)
        << later << ": " << imported_line(later);
  EXPECT_EQ(std::system(("python3 -c 'import sys, xml.dom.minidom as m; m.parse(sys.argv[1])' " + (dir_ / "sw.svg")).c_str()),
            0);
  auto table = cli({"report", "sw"});  // by name, without the file
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("0.4-int8"), std::string::npos) << table.out;

  // A model file written since (a new modification time) is read again.
  fs::last_write_time(dir_ / "models/stories/model.safetensors",
                      fs::last_write_time(dir_ / "models/stories/model.safetensors") + std::chrono::seconds(5));
  ASSERT_EQ(cli({"submit", write_job("touched")}).exit_code, 0);
  wait_for("touched", ended, 60'000);
  EXPECT_EQ(imported_line("touched").find("known from an earlier job"), std::string::npos) << imported_line("touched");
  expect_reference_output("touched");

  // An edited sweep does not silently reuse jobs made with other settings.
  test::write_text(file, base + "  quantize: {blocksize: 128}\naxes:\n  prune.sparsity: [0.2, 0.4]\n  quantize.format: [nf4, int8]\n");
  auto edited = cli({"sweep", file});
  EXPECT_EQ(edited.exit_code, 2);
  EXPECT_NE(edited.out.find("quantize.blocksize: 64 -> 128"), std::string::npos) << edited.out;
}

}  // namespace
}  // namespace sp

namespace sp {
namespace {

// `eval --remote --choices`: the items as padded sequences through the workers' forward
// tasks, the head scoring each choice's span: the accuracy `eval --choices` computes in
// one process, for the original model and an NF4 output.
TEST_F(EvaluationCluster, RemoteMultipleChoiceMatchesLocal) {
  start_coordinator();
  start_worker("a");
  start_worker("b", "", /*fetch=*/true);
  ASSERT_EQ(std::system(("python3 " + std::string(SP_PROJECT_DIR) + "/scripts/make-stories-choices.py " +
                         test::fixture("stories260k/text/eval.txt") + " > " + (dir_ / "models/choices.jsonl"))
                            .c_str()),
            0);
  ASSERT_EQ(test::run_cli({"compress", dir_ / "models/stories", dir_ / "models/nf4"}).exit_code, 0);
  for (const std::string m : {"stories", "nf4"}) {
    auto local = test::run_cli({"eval", dir_ / ("models/" + m), "--choices", dir_ / "models/choices.jsonl", "--samples",
                                "60", "-o", "json"});
    ASSERT_EQ(local.exit_code, 0) << local.err;
    auto remote = cli({"eval", dir_ / ("models/" + m), "--choices", dir_ / "models/choices.jsonl", "--samples", "60",
                       "--remote", "-o", "json"});
    ASSERT_EQ(remote.exit_code, 0) << remote.out << remote.err;
    const json l = json::parse(local.out), r = json::parse(remote.out);
    EXPECT_EQ(r["items"], 60) << m;
    EXPECT_EQ(r["correct"], l["correct"]) << m;
    EXPECT_EQ(r["correct_norm"], l["correct_norm"]) << m;
    EXPECT_DOUBLE_EQ(r["acc"].get<double>(), l["acc"].get<double>()) << m;
  }
  auto text = cli({"status", "eval-nf4"});
  EXPECT_NE(text.out.find("result    accuracy"), std::string::npos) << text.out;
  // A GGUF file has no tokenizer.model: --tokenizer names the original's folder, here and remote.
  ASSERT_EQ(test::run_cli({"compress", dir_ / "models/stories", dir_ / "models/q8.gguf", "--format", "gguf", "--type",
                           "Q8_0"})
                .exit_code,
            0);
  auto none = cli({"eval", dir_ / "models/q8.gguf", "--choices", dir_ / "models/choices.jsonl", "--remote"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("tokenizer.model"), std::string::npos) << none.err;
  auto gl = test::run_cli({"eval", dir_ / "models/q8.gguf", "--choices", dir_ / "models/choices.jsonl", "--samples", "30",
                           "--tokenizer", dir_ / "models/stories", "-o", "json"});
  auto gr = cli({"eval", dir_ / "models/q8.gguf", "--choices", dir_ / "models/choices.jsonl", "--samples", "30",
                 "--tokenizer", dir_ / "models/stories/tokenizer.model", "--remote", "-o", "json"});
  ASSERT_EQ(gl.exit_code, 0) << gl.err;
  ASSERT_EQ(gr.exit_code, 0) << gr.err;
  EXPECT_EQ(json::parse(gr.out)["correct"], json::parse(gl.out)["correct"]);
  // A bad item is refused at submit, naming its line; nothing runs.
  test::write_text(dir_ / "models/bad.jsonl", "{\"context\": \"a\", \"choices\": [\"b\"], \"answer\": 0}\n");
  auto bad = cli({"eval", dir_ / "models/stories", "--choices", dir_ / "models/bad.jsonl", "--remote"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("line 1: 'choices' must be a list of 2 or more"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace sp
