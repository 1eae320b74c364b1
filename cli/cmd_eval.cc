// shardpress eval MODEL_OR_OUTPUT_DIR --ids FILE [--seq-len N] [--samples N]: perplexity
// of an original model or of a compressed checkpoint (NF4 dequantized), by the protocol
// of algorithms.md §g: each line of the ids file scored alone, tokens 2..T predicted
// from their prefix, ppl = exp(total NLL / predictions).
// shardpress eval MODEL --choices FILE.jsonl: multiple-choice accuracy (ops/choice_scoring).
#include <cctype>
#include <chrono>
#include <filesystem>
#include <cstdio>
#include <thread>

#include "checkpoint/float_model.h"
#include "common/file_util.h"
#include "checkpoint/gguf_model.h"
#include "cli/coordinator_api.h"
#include "cli/follow.h"
#include "coordinator/import_source.h"
#include "jobs/evaluation_gate.h"
#include "jobs/job_settings.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "fmt/format.h"
#include "formats/token_ids.h"
#include "formats/choice_items.h"
#include "nlohmann/json.hpp"
#include "ops/choice_scoring.h"
#include "ops/linalg.h"

namespace sp::cli {
namespace {

using shardpress::v1::JobSpec;

struct EvalArgs {
  std::string dir;
  std::string ids;
  int64_t seq_len = 0;
  int64_t samples = 0;
  int threads = 0;
  std::string output = "table";
  bool remote = false;
  std::string name;
  std::string choices;    // multiple-choice items (JSONL) instead of --ids
  std::string tokenizer;  // text items: a tokenizer.model or its folder (default: the model's)
};

void print_result(const EvalArgs& a, bool quantized, int64_t sequences, int64_t seq_len, int64_t predictions,
                  double mean_nll, double perplexity, double secs, const std::string& where) {
  if (a.output == "json") {
    nlohmann::ordered_json j = {{"model", a.dir},         {"quantized", quantized},     {"ids", a.ids},
                                {"sequences", sequences}, {"seq_len", seq_len},         {"predictions", predictions},
                                {"mean_nll", mean_nll},   {"perplexity", perplexity},   {"seconds", secs},
                                {"where", where}};
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("model        %s (%s)\n", a.dir.c_str(),
              !quantized ? "original weights" : is_gguf_file(a.dir) ? "GGUF, dequantized" : "bitsandbytes 4-bit, dequantized");
  std::printf("text         %s: %lld sequences x %lld tokens, %lld predictions\n", a.ids.c_str(),
              static_cast<long long>(sequences), static_cast<long long>(seq_len), static_cast<long long>(predictions));
  std::printf("mean NLL     %.6f\n", mean_nll);
  std::printf("perplexity   %.4f\n", perplexity);
  std::printf("time         %.1f s (%s)\n", secs, where.c_str());
}

int run_remote_job(const EvalArgs& a, CoordinatorApiClient& c, JobSpec spec, const std::string& name,
                   std::chrono::steady_clock::time_point t0);

void print_choices(const EvalArgs& a, bool quantized, const shardpress::v1::ChoiceScore& acc, double secs,
                   const std::string& where) {
  if (a.output == "json") {
    nlohmann::ordered_json j = {{"model", a.dir},
                                {"quantized", quantized},
                                {"choices", a.choices},
                                {"items", acc.items()},
                                {"correct", acc.correct()},
                                {"acc", acc.acc()},
                                {"acc_stderr", acc.acc_stderr()},
                                {"correct_norm", acc.correct_norm()},
                                {"acc_norm", acc.acc_norm()},
                                {"acc_norm_stderr", acc.acc_norm_stderr()},
                                {"seconds", secs},
                                {"where", where}};
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("model        %s (%s)\n", a.dir.c_str(), quantized ? "compressed, dequantized" : "original weights");
  std::printf("task         %s: %lld items\n", a.choices.c_str(), static_cast<long long>(acc.items()));
  std::printf("accuracy     %.4f +- %.4f (%lld right)\n", acc.acc(), acc.acc_stderr(), static_cast<long long>(acc.correct()));
  std::printf("acc_norm     %.4f +- %.4f (log-likelihood per byte)\n", acc.acc_norm(), acc.acc_norm_stderr());
  std::printf("time         %.1f s (%s)\n", secs, where.c_str());
}

// On the coordinator's workers: an evaluation job (the forward layer by layer, then the
// head), followed until it ends.
int run_remote(const EvalArgs& a, const ConnectionFlags& conn) {
  const auto t0 = std::chrono::steady_clock::now();
  namespace fs = std::filesystem;
  JobSpec spec;
  const fs::path model = fs::absolute(a.dir).lexically_normal();
  std::string name = a.name;
  if (name.empty()) {
    name = "eval-" + (model.filename().empty() ? model.parent_path() : model).filename().string();
    for (char& ch : name)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' && ch != '-') ch = '-';
    name = name.substr(0, 64);
  }
  spec.set_name(name);
  spec.set_model(model.string());
  if (!a.choices.empty())
    spec.mutable_eval()->set_choices(fs::absolute(a.choices).lexically_normal().string());
  else
    spec.mutable_eval()->set_ids(fs::absolute(a.ids).lexically_normal().string());
  if (!a.tokenizer.empty()) {  // the folder (the coordinator reads its tokenizer.model)
    fs::path tok = fs::absolute(a.tokenizer).lexically_normal();
    if (tok.filename() == "tokenizer.model") tok = tok.parent_path();
    spec.mutable_eval()->set_tokenizer(tok.string());
  }
  spec.mutable_eval()->set_samples(static_cast<int32_t>(a.samples));
  spec.mutable_eval()->set_seq_len(static_cast<int32_t>(a.seq_len));
  auto v = validate_job_spec(spec);
  if (!v.ok()) return report_error(v);
  return with_coordinator(conn, [&](CoordinatorApiClient& c) { return run_remote_job(a, c, spec, name, t0); });
}

int run_remote_job(const EvalArgs& a, CoordinatorApiClient& c, JobSpec spec, const std::string& name,
                   std::chrono::steady_clock::time_point t0) {
  auto s = c.submit(spec);
  // Names are unique: a second evaluation of the same folder is eval-NAME-2, -3, ...
  for (int n = 2; a.name.empty() && absl::IsAlreadyExists(s.status()) && n < 1000; ++n) {
    spec.set_name(fmt::format("{}-{}", name.substr(0, 58), n));
    s = c.submit(spec);
  }
  if (!s.ok()) return report_rpc_error(s.status(), c.address());
  const std::string id = s->id();
  std::fprintf(stderr, "submitted %s\n", id.c_str());
  // Progress and the job's view on stderr: stdout has the result only.
  FollowOptions fo;
  fo.final_view_on_stdout = false;
  const int rc = follow_job([&c, id] { return c.get(id); }, c.address(), fo);
  if (rc != kExitOk) return rc;
  auto done = c.get(id);
  if (!done.ok()) return report_rpc_error(done.status(), c.address());
  if (done->predictions() <= 0) return report_error(absl::InternalError("the job finished without a result"));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!a.choices.empty()) {
    if (!done->has_choice_score()) return report_error(absl::InternalError("the job finished without an accuracy"));
    print_choices(a, is_quantized_checkpoint(a.dir) || is_gguf_file(a.dir), done->choice_score(), secs,
                  "job " + id + " on the coordinator's workers");
    return kExitOk;
  }
  print_result(a, is_quantized_checkpoint(a.dir) || is_gguf_file(a.dir), done->sequences(), done->seq_len(), done->predictions(), done->mean_nll(),
               done->perplexity(), secs, "job " + id + " on the coordinator's workers");
  return kExitOk;
}

// The SentencePiece tokenizer for text items: --tokenizer (a tokenizer.model or its
// folder), else the model folder's (none: only id items can be read).
absl::StatusOr<std::optional<SentencePieceTokenizer>> choice_tokenizer(const EvalArgs& a) {
  if (a.tokenizer.empty()) return model_tokenizer(a.dir);
  std::error_code ec;
  const bool folder = std::filesystem::is_directory(a.tokenizer, ec);
  const std::string path = folder ? (std::filesystem::path(a.tokenizer) / "tokenizer.model").string() : a.tokenizer;
  SP_ASSIGN_OR_RETURN(const std::string bytes, read_file(path));
  SP_ASSIGN_OR_RETURN(auto tok, SentencePieceTokenizer::from_model(bytes, path));
  return std::optional<SentencePieceTokenizer>(std::move(tok));
}

int run_choices(const EvalArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  auto loaded = load_float_model(a.dir);
  if (!loaded.ok()) return report_error(loaded.status());
  const auto tokenizer = choice_tokenizer(a);
  if (!tokenizer.ok()) return report_error(tokenizer.status());
  auto items = read_choice_items(a.choices, loaded->model.config.vocab_size, *tokenizer ? &**tokenizer : nullptr,
                                 a.samples);
  if (!items.ok()) return report_error(items.status());
  const int threads = a.threads > 0 ? a.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  set_blas_threads(1);  // one item per thread
  auto ll = choice_logliks(loaded->model, *items, threads);
  if (!ll.ok()) return report_error(ll.status());
  const ChoiceAccuracy acc = choice_accuracy(*items, *ll);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  print_choices(a, loaded->quantized, choice_score(acc), secs, fmt::format("here, {} threads", threads));
  return kExitOk;
}

int run_eval(const EvalArgs& a, const ConnectionFlags& conn) {
  if (a.ids.empty() == a.choices.empty())
    return report_error(absl::InvalidArgumentError("give --ids (perplexity) or --choices (multiple choice), one of them"));
  if (!a.choices.empty() && !a.remote) return run_choices(a);
  if (a.remote) return run_remote(a, conn);
  const auto t0 = std::chrono::steady_clock::now();
  auto loaded = load_float_model(a.dir);
  if (!loaded.ok()) return report_error(loaded.status());
  auto batch = read_token_ids(a.ids, loaded->model.config.vocab_size, a.samples, a.seq_len);
  if (!batch.ok()) return report_error(batch.status());
  const int threads = a.threads > 0 ? a.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  set_blas_threads(1);  // one sequence per thread
  auto p = perplexity(loaded->model, *batch, threads);
  if (!p.ok()) return report_error(p.status());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  print_result(a, loaded->quantized, p->sequences, p->seq_len, p->predictions, p->mean_nll, p->perplexity, secs,
               fmt::format("here, {} threads", threads));
  return kExitOk;
}

}  // namespace

void add_eval_command(CLI::App& app, const ConnectionFlags* conn, int* exit_code) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Perplexity of a model or of a compressed checkpoint on token ids");
  cmd->add_option("MODEL_DIR", args->dir, "Original model folder, shardpress output folder, or a GGUF file")->required();
  cmd->add_option("--ids", args->ids, "Token-id file: one sequence per line, ids separated by spaces (perplexity)");
  cmd->add_option("--choices", args->choices,
                  "Multiple-choice items, JSONL: {context, choices, answer} or {context_ids, choices_ids, answer} "
                  "(accuracy; --samples: the first N items)");
  cmd->add_option("--tokenizer", args->tokenizer,
                  "With --choices: the SentencePiece tokenizer.model (or its folder) for text items (default: the "
                  "model folder's; a GGUF file has none: name the original's)");
  cmd->add_option("--seq-len", args->seq_len, "Tokens per sequence (default: the first line's length)");
  cmd->add_option("--samples", args->samples, "Use the first N lines (default: all)");
  cmd->add_option("--threads", args->threads, "Threads (default: all cores)");
  cmd->add_option("-o,--output", args->output, "table or json")->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  cmd->add_flag("--remote", args->remote,
                "Run on the coordinator's workers (--coordinator): the forward layer by layer, then the head; "
                "paths must be under its model root");
  cmd->add_option("--name", args->name, "With --remote: the job's name (default eval-<folder>)");
  cmd->callback([args, conn, exit_code] { *exit_code = run_eval(*args, *conn); });
}

}  // namespace sp::cli
