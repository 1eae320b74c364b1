// shardpress synth --arch llama --params 1B --dtype bf16 OUT_DIR: a synthetic model for
// benchmarks and scale tests (real names and config, deterministic random weights).
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "cli/output.h"
#include "common/byte_size.h"
#include "formats/synthetic_model.h"

namespace sp::cli {
namespace {
struct SynthArgs {
  std::string out, arch = "llama", params = "1B", dtype = "bf16";
  uint64_t seed = 1;
};
}  // namespace

void add_synth_command(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<SynthArgs>();
  CLI::App* cmd = app.add_subcommand("synth", "Write a synthetic model (real tensor names, random weights)");
  cmd->add_option("OUT_DIR", a->out, "New folder")->required();
  cmd->add_option("--arch", a->arch, "llama, qwen2 or exaone4")->check(CLI::IsMember({"llama", "qwen2", "exaone4"}))
      ->capture_default_str();
  cmd->add_option("--params", a->params, "Approximate size: 260K, 125M, 1B ...")->capture_default_str();
  cmd->add_option("--dtype", a->dtype, "bf16, f16 or f32")->check(CLI::IsMember({"bf16", "f16", "f32"}))
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "Random seed")->capture_default_str();
  cmd->callback([a, exit_code] {
    auto params = parse_param_count(a->params);
    if (!params.ok()) {
      *exit_code = report_error(annotate(params.status(), "--params"));
      return;
    }
    SynthOptions o;
    o.arch = a->arch == "llama" ? Arch::kLlama : a->arch == "qwen2" ? Arch::kQwen2 : Arch::kExaone4;
    o.params = *params;
    o.dtype = a->dtype == "bf16" ? DType::kBF16 : a->dtype == "f16" ? DType::kF16 : DType::kF32;
    o.seed = a->seed;
    const auto t0 = std::chrono::steady_clock::now();
    auto s = write_synthetic_model(a->out, o);
    if (!s.ok()) {
      *exit_code = report_error(s.status());
      return;
    }
    std::printf("%s: %s, %lld layers, hidden %lld, intermediate %lld, vocab %lld: %s parameters, %s (%.1f s)\n",
                a->out.c_str(), a->arch.c_str(), static_cast<long long>(s->layers), static_cast<long long>(s->hidden),
                static_cast<long long>(s->intermediate), static_cast<long long>(s->vocab),
                format_count(s->params).c_str(), format_bytes(s->bytes).c_str(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  });
}

}  // namespace sp::cli
