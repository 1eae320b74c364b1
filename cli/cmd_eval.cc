// shardpress eval MODEL_OR_OUTPUT_DIR --ids FILE [--seq-len N] [--samples N]: perplexity
// of an original model or of a compressed checkpoint (NF4 dequantized), by the protocol
// of algorithms.md §g: each line of the ids file scored alone, tokens 2..T predicted
// from their prefix, ppl = exp(total NLL / predictions).
#include <chrono>
#include <cstdio>
#include <thread>

#include "checkpoint/float_model.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "fmt/format.h"
#include "formats/token_ids.h"
#include "nlohmann/json.hpp"
#include "ops/linalg.h"

namespace sp::cli {
namespace {

struct EvalArgs {
  std::string dir;
  std::string ids;
  int64_t seq_len = 0;
  int64_t samples = 0;
  int threads = 0;
  std::string output = "table";
};

int run_eval(const EvalArgs& a) {
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
  if (a.output == "json") {
    nlohmann::ordered_json j = {{"model", a.dir},
                                {"quantized", loaded->quantized},
                                {"ids", a.ids},
                                {"sequences", p->sequences},
                                {"seq_len", p->seq_len},
                                {"predictions", p->predictions},
                                {"mean_nll", p->mean_nll},
                                {"perplexity", p->perplexity},
                                {"seconds", secs}};
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::printf("model        %s (%s)\n", a.dir.c_str(), loaded->quantized ? "NF4, dequantized" : "original weights");
  std::printf("text         %s: %lld sequences x %lld tokens, %lld predictions\n", a.ids.c_str(),
              static_cast<long long>(p->sequences), static_cast<long long>(p->seq_len),
              static_cast<long long>(p->predictions));
  std::printf("mean NLL     %.6f\n", p->mean_nll);
  std::printf("perplexity   %.4f\n", p->perplexity);
  std::printf("time         %.1f s\n", secs);
  return kExitOk;
}

}  // namespace

void add_eval_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Perplexity of a model or of a compressed checkpoint on token ids");
  cmd->add_option("MODEL_DIR", args->dir, "Original model folder or shardpress output folder")->required();
  cmd->add_option("--ids", args->ids, "Token-id file: one sequence per line, ids separated by spaces")->required();
  cmd->add_option("--seq-len", args->seq_len, "Tokens per sequence (default: the first line's length)");
  cmd->add_option("--samples", args->samples, "Use the first N lines (default: all)");
  cmd->add_option("--threads", args->threads, "Threads (default: all cores)");
  cmd->add_option("-o,--output", args->output, "table or json")->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  cmd->callback([args, exit_code] { *exit_code = run_eval(*args); });
}

}  // namespace sp::cli
