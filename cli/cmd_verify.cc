// shardpress verify OUT_DIR|FILE.gguf [--against MODEL_DIR [--exact]]: re-read an NF4 checkpoint
// or a GGUF file (checkpoint/gguf_verify.h),
// check every byte a loader relies on, and report per-tensor error against the original
// and how many codes differ from round-to-nearest of it (none may, with --exact or when
// the checkpoint records that it was made by round-to-nearest).
#include <cstdio>

#include "checkpoint/gguf_model.h"
#include "checkpoint/gguf_verify.h"
#include "checkpoint/verify.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "fmt/format.h"
#include "fmt/ranges.h"
#include "nlohmann/json.hpp"

namespace sp::cli {
namespace {

struct VerifyArgs {
  std::string dir;
  std::string against;
  std::string output = "table";
  bool all = false;
  bool exact = false;
};

std::string shape_text(const std::vector<int64_t>& s) { return fmt::format("{}", fmt::join(s, "x")); }

int run_verify(const VerifyArgs& a) {
  if (a.exact && a.against.empty())
    return report_error(absl::InvalidArgumentError("--exact compares with the original: give --against MODEL_DIR"));
  VerifyOptions o;
  if (!a.against.empty()) o.against = a.against;
  o.exact = a.exact;
  auto report = is_gguf_file(a.dir) ? verify_gguf(a.dir, o) : verify_checkpoint(a.dir, o);
  if (!report.ok()) return report_error(report.status());
  const VerifyReport& r = *report;
  size_t quantized = 0;
  for (const auto& t : r.tensors) quantized += t.quantized;

  if (a.output == "json") {
    nlohmann::ordered_json j;
    j["checkpoint"] = r.dir;
    j["ok"] = r.ok();
    j["architecture"] = r.architecture;
    if (!r.gguf_type.empty()) j["gguf_type"] = r.gguf_type;
    j["blocksize"] = r.blocksize;
    j["double_quant"] = r.double_quant;
    j["manifest_checked"] = r.manifest_checked;
    if (r.against) {
      j["against"] = *r.against;
      j["codes_compared_with"] = r.reference;
      j["exact"] = r.exact;
    }
    j["problems"] = r.problems;
    nlohmann::ordered_json ts = nlohmann::ordered_json::array();
    for (const auto& t : r.tensors) {
      nlohmann::ordered_json e = {{"name", t.name}, {"quantized", t.quantized},
                                  {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}};
      if (!t.kind.empty()) e["type"] = t.kind;
      if (!t.problem.empty()) e["problem"] = t.problem;
      if (t.max_abs_error) e["max_abs_error"] = *t.max_abs_error;
      if (t.rel_rmse) e["rel_rmse"] = *t.rel_rmse;
      if (t.zero_fraction) e["zero_fraction"] = *t.zero_fraction;
      if (t.codes_differ) {
        e["codes_differ"] = *t.codes_differ;
        e["codes"] = t.codes_total;
      }
      ts.push_back(std::move(e));
    }
    j["tensors"] = ts;
    std::printf("%s\n", j.dump(2).c_str());
    return r.ok() ? kExitOk : kExitFailed;
  }

  std::string out;
  out += fmt::format("checkpoint  {}\n", r.dir);
  const bool gguf = !r.gguf_type.empty();
  if (gguf)
    out += fmt::format("format      GGUF {}, {}\n", r.gguf_type, r.architecture);
  else if (!r.architecture.empty())
    out += fmt::format("format      {}, NF4 block {}, {}\n", r.architecture, r.blocksize,
                       r.double_quant ? "double quant" : "float32 absmax");
  out += fmt::format("tensors     {} quantized, {} unquantized\n", quantized, r.tensors.size() - quantized);
  if (!gguf)
    out += fmt::format("manifest    {}\n", r.manifest_checked ? "every tensor and file checked against its digest"
                                                              : "none (byte-level integrity not checked)");
  else
    out += "decoded     every tensor, to finite values\n";
  if (r.against) {
    out += fmt::format("against     {}\n", *r.against);
    out += r.reference.empty()
               ? fmt::format("codes       not compared ({})\n",
                             gguf ? "quantized with an importance matrix" : "the manifest records a data-dependent method")
               : fmt::format("codes       compared with {} of the original{}\n", r.reference,
                             r.exact ? fmt::format("; every one must match ({})", r.exact_reason) : "");
    out += "\n";
    Table t({"TENSOR", "KIND", "SHAPE", "MAX ABS ERR", "REL RMSE", "ZEROS", gguf ? "BLOCKS != RTN" : "CODES != RTN"});
    double worst = 0;
    for (const auto& v : r.tensors) {
      if (!v.rel_rmse) continue;
      if (!a.all && !v.quantized && *v.max_abs_error == 0 && v.kind != "F16" && v.kind != "BF16") continue;
      worst = std::max(worst, *v.rel_rmse);
      t.add({v.name, !v.kind.empty() ? v.kind : v.quantized ? "nf4" : std::string(dtype_name(v.dtype)), shape_text(v.shape),
             fmt::format("{:.6f}", *v.max_abs_error), fmt::format("{:.4f}", *v.rel_rmse),
             fmt::format("{:.1f}%", *v.zero_fraction * 100),
             v.codes_differ ? std::to_string(*v.codes_differ) : std::string("-")});
    }
    out += t.render();
    if (!a.all) out += "(unquantized tensors identical to the original are not listed; --all lists them)\n";
  }
  std::fputs(out.c_str(), stdout);
  if (r.ok()) {
    std::printf("\nOK\n");
    return kExitOk;
  }
  std::fprintf(stderr, "\nFAILED: %zu problem%s\n", r.problems.size(), r.problems.size() == 1 ? "" : "s");
  for (const auto& p : r.problems) std::fprintf(stderr, "  - %s\n", p.c_str());
  return kExitFailed;
}

}  // namespace

void add_verify_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<VerifyArgs>();
  CLI::App* cmd = app.add_subcommand("verify", "Check a bitsandbytes 4-bit (NF4/FP4) checkpoint or a GGUF file (and its error against the original)");
  cmd->add_option("OUT_DIR", args->dir, "Checkpoint folder written by shardpress, or a .gguf file")->required();
  cmd->add_option("--against", args->against, "Original model folder: report per-tensor error");
  cmd->add_flag("--all", args->all, "List every tensor, also unchanged ones");
  cmd->add_flag("--exact", args->exact,
                "With --against: fail unless every NF4 code (GGUF: every block) equals round-to-nearest of the "
                "original (the default for checkpoints whose manifest records round-to-nearest)");
  cmd->add_option("-o,--output", args->output, "table or json")->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  cmd->callback([args, exit_code] { *exit_code = run_verify(*args); });
}

}  // namespace sp::cli
