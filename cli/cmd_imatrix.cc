// shardpress imatrix MODEL_DIR --ids FILE -o OUT.dat: llama.cpp's importance matrix
// computed with shardpress' forward pass (checkpoint/imatrix_compute.h), written in
// llama-imatrix's file format for `compress --format gguf --imatrix` or llama-quantize.
#include <chrono>
#include <cstdio>

#include "checkpoint/imatrix_compute.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "formats/model_config.h"
#include "formats/token_ids.h"
#include "ops/linalg.h"

namespace sp::cli {
namespace {

struct ImatrixArgs {
  std::string model_dir, ids, out;
  int64_t samples = 128, seq_len = 0;
};

int run_imatrix(const ImatrixArgs& a) {
  auto config = load_model_config(a.model_dir);
  if (!config.ok()) return report_error(config.status());
  auto ids = read_token_ids(a.ids, config->vocab_size, a.samples, a.seq_len);
  if (!ids.ok()) return report_error(annotate(ids.status(), "--ids"));
  const auto t0 = std::chrono::steady_clock::now();
  set_blas_threads(1);  // the values a job's workers and `compress --calib-ids` compute
  auto m = compute_imatrix(a.model_dir, *ids, a.ids);
  if (!m.ok()) return report_error(m.status());
  if (auto st = write_imatrix(a.out, *m); !st.ok()) return report_error(st);
  std::printf("imatrix       %s: %zu weights, %lld sequences x %lld tokens (%.2f s)\n", a.out.c_str(),
              m->entries.size(), static_cast<long long>(ids->sequences), static_cast<long long>(ids->seq_len),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return kExitOk;
}

}  // namespace

void add_imatrix_command(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<ImatrixArgs>();
  CLI::App* cmd = app.add_subcommand(
      "imatrix", "Compute llama.cpp's importance matrix of a model on token ids (for GGUF output, or llama-quantize)");
  cmd->add_option("MODEL_DIR", a->model_dir, "Hugging Face model folder")->required();
  cmd->add_option("--ids", a->ids, "Token-id file: one sequence per line")->required();
  cmd->add_option("--samples", a->samples, "Use the first N lines")->capture_default_str();
  cmd->add_option("--seq-len", a->seq_len, "Tokens per sequence (default: the first line's length)");
  cmd->add_option("-o,--output", a->out, "New imatrix file (llama-imatrix's format)")->required();
  cmd->callback([a, exit_code] { *exit_code = run_imatrix(*a); });
}

}  // namespace sp::cli
