// shardpress compress MODEL_DIR OUT_DIR: prune and/or quantize a model to a bitsandbytes
// NF4 checkpoint in this process (no coordinator), one shard at a time; with --format gguf,
// one llama.cpp file.
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>

#include "checkpoint/gguf_export.h"
#include "checkpoint/imatrix_compute.h"
#include "checkpoint/local_compress.h"
#include "cli/commands.h"
#include "cli/compress_flags.h"
#include "formats/model_config.h"
#include "formats/token_ids.h"
#include "ops/linalg.h"
#include "cli/output.h"
#include "common/byte_size.h"
#include "fmt/format.h"
#include "fmt/ranges.h"
#include "nlohmann/json.hpp"
#include "worker/device.h"

namespace sp::cli {
namespace {

struct CompressArgs {
  std::string model_dir;
  std::string out_dir;
  std::string max_shard_size = "5GB";
  std::string output = "table";
  std::string device = "cpu", gpu_memory;
  CompressFlags flags;
};

// --format gguf: one llama.cpp file (checkpoint/gguf_export.h).
int run_gguf(const CompressArgs& a, const JobSettings& settings) {
  GgufExportOptions options;
  options.type = *settings.compress.gguf;
  auto read = read_imatrix_option(settings);
  if (!read.ok()) return report_error(read.status());
  std::optional<Imatrix> imatrix = std::move(*read);
  // The forward passes of the importance values and of GPTQ: one BLAS thread, so that the
  // bytes are a job's (workers compute so: ops/linalg's sums differ by thread count).
  set_blas_threads(1);
  if (imatrix) {
    options.imatrix_file = settings.gguf_imatrix;
  } else if (settings.compress.gguf_importance) {  // computed here, on the original model
    const CalibrationSettings& calib = *settings.calibration;
    auto config = load_model_config(a.model_dir);
    if (!config.ok()) return report_error(config.status());
    auto ids = read_token_ids(calib.ids, config->vocab_size, calib.samples, calib.seq_len);
    if (!ids.ok()) return report_error(annotate(ids.status(), "--calib-ids"));
    std::fprintf(stderr, "importance values: %lld sequences x %lld tokens of %s\n",
                 static_cast<long long>(ids->sequences), static_cast<long long>(ids->seq_len), calib.ids.c_str());
    auto m = compute_imatrix(a.model_dir, *ids, calib.ids);
    if (!m.ok()) return report_error(m.status());
    imatrix = std::move(*m);
    options.imatrix_file = calib.ids;
  }
  if (imatrix) options.imatrix = &*imatrix;
  std::optional<TokenBatch> gptq_ids;
  if (settings.compress.quant_method == QuantMethod::kGptq) {  // GPTQ on the grids: calibration text
    const CalibrationSettings& calib = *settings.calibration;
    auto config = load_model_config(a.model_dir);
    if (!config.ok()) return report_error(config.status());
    auto ids = read_token_ids(calib.ids, config->vocab_size, calib.samples, calib.seq_len);
    if (!ids.ok()) return report_error(annotate(ids.status(), "--calib-ids"));
    gptq_ids = std::move(*ids);
    options.gptq_ids = &*gptq_ids;
    options.gptq = settings.compress.gptq;
    options.sequential = !calib.pipelined;
  }
  const std::string type(options.type.name);
  std::fprintf(stderr, "writing %s -> %s: %sGGUF %s%s\n", a.model_dir.c_str(), a.out_dir.c_str(),
               settings.compress.quant_method == QuantMethod::kGptq ? "GPTQ-" : "", type.c_str(),
               imatrix ? fmt::format(" with the importance values of {}", options.imatrix_file).c_str() : "");
  const auto t0 = std::chrono::steady_clock::now();
  auto s = export_gguf(a.model_dir, a.out_dir, options);
  if (!s.ok()) return report_error(s.status());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double bpw = s->weights ? 8.0 * static_cast<double>(s->weight_bytes) / static_cast<double>(s->weights) : 0.0;
  if (a.output == "json") {
    nlohmann::ordered_json j;
    j["output"] = s->path;
    j["format"] = "gguf";
    j["type"] = type;
    j["tensors"] = s->tensors;
    j["bytes"] = s->bytes;
    j["bits_per_weight"] = bpw;
    if (gptq_ids) j["gptq_loss"] = s->gptq_loss;
    j["fallbacks"] = s->fallbacks;
    j["seconds"] = secs;
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::map<std::string, int> counts;
  for (const auto& t : s->plan) ++counts[std::string(ggml_traits(t.type).name)];
  std::string mix;
  for (const auto& [name, n] : counts) mix += fmt::format("{}{} {}", mix.empty() ? "" : ", ", n, name);
  std::printf("output        %s (GGUF %s, %d tensors, %s)\n", s->path.c_str(), type.c_str(), s->tensors,
              format_bytes(s->bytes).c_str());
  std::printf("types         %s; %.2f bits per weight\n", mix.c_str(), bpw);
  if (gptq_ids) std::printf("gptq          loss %.4g over the layers\n", s->gptq_loss);
  for (const auto& f : s->fallbacks) std::printf("fallback      %s\n", f.c_str());
  std::printf("time          %.2f s\n", secs);
  return kExitOk;
}

int run_compress(const CompressArgs& a) {
  auto settings = to_settings(a.flags);
  if (!settings.ok()) return report_error(settings.status());
  if (settings->compress.gguf) return run_gguf(a, *settings);
  auto max_shard = parse_byte_size(a.max_shard_size);
  if (!max_shard.ok()) return report_error(annotate(max_shard.status(), "--max-shard-size"));
  auto device = choose_device(a.device);
  if (!device.ok()) return report_error(device.status());
  auto gpu_memory = gpu_memory_budget(a.gpu_memory);
  if (!gpu_memory.ok()) return report_error(gpu_memory.status());
  LocalCompressOptions opts;
  opts.settings = settings->compress;
  opts.max_shard_bytes = *max_shard;
  opts.backend = &nf4_backend_for(*device);
  opts.prune_device = prune_device_for(*device);
  opts.device = calibration_device_for(*device, *gpu_memory);
  if (const auto& calib = settings->calibration) {
    auto config = load_model_config(a.model_dir);
    if (!config.ok()) return report_error(config.status());
    auto ids = read_token_ids(calib->ids, config->vocab_size, calib->samples, calib->seq_len);
    if (!ids.ok()) return report_error(ids.status());
    opts.calibration = std::move(*ids);
    opts.sequential = !calib->pipelined;
    opts.activations_dtype = calib->activations;
    set_blas_threads(1);  // deterministic and predictable: one core per compression
  }
  const bool tty = stderr_is_tty();
  opts.on_shard = [tty](size_t i, size_t n, const std::string& id, double secs) {
    if (tty) {
      const int width = 30, done = static_cast<int>((i + 1) * width / n);
      std::fprintf(stderr, "\r[%s%s] %zu/%zu %-12s", std::string(done, '#').c_str(),
                   std::string(width - done, '.').c_str(), i + 1, n, id.c_str());
      if (i + 1 == n) std::fputc('\n', stderr);
    } else {
      std::fprintf(stderr, "shard %zu/%zu %s done in %.3f s\n", i + 1, n, id.c_str(), secs);
    }
  };
  std::fprintf(stderr, "compressing %s -> %s: %s\n", a.model_dir.c_str(), a.out_dir.c_str(),
               describe(settings->compress).c_str());
  auto s = compress_model_local(a.model_dir, a.out_dir, opts);
  if (!s.ok()) return report_error(s.status());

  size_t quantized = 0, pruned = 0;
  uint64_t zeros = 0, total = 0;
  for (const auto& t : s->tensors) {
    quantized += t.quantized;
    if (t.prune) {
      ++pruned;
      zeros += t.prune->zeros;
      total += t.prune->total;
    }
  }
  if (a.output == "json") {
    nlohmann::ordered_json j;
    j["output"] = s->output_dir;
    j["compression"] = describe(settings->compress);
    j["shards"] = s->shards;
    j["files"] = s->files;
    j["input_bytes"] = s->input_bytes;
    j["output_bytes"] = s->output_bytes;
    j["quantized_tensors"] = quantized;
    j["quantized_params"] = s->quantized_params;
    j["seconds"] = s->seconds;
    if (!s->linears.empty()) {
      nlohmann::ordered_json ls = nlohmann::ordered_json::array();
      for (const auto& l : s->linears)
        ls.push_back({{"name", l.name}, {"gptq_loss", l.loss}, {"damp", l.damp}, {"dead_columns", l.dead_columns},
                      {"output_error", l.output_error}});
      j["calibrated"] = ls;
    }
    nlohmann::ordered_json ts = nlohmann::ordered_json::array();
    for (const auto& t : s->tensors) {
      if (!t.prune) continue;
      ts.push_back({{"name", t.name}, {"pruned", t.prune->pruned}, {"zeros", t.prune->zeros},
                    {"total", t.prune->total}, {"sparsity", t.prune->sparsity()}});
    }
    j["pruned_tensors"] = ts;
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::printf("output        %s (%s)\n", s->output_dir.c_str(), fmt::format("{}", fmt::join(s->files, ", ")).c_str());
  const std::string type(bnb_type_label(settings->compress.quantize ? settings->compress.quantize->quant_type : BnbType::kNf4));
  std::printf("tensors       %zu quantized to %s, %zu pruned, %zu kept as they were\n", quantized, type.c_str(), pruned,
              s->tensors.size() - std::max(quantized, pruned));
  if (total)
    std::printf("sparsity      %.2f%% of pruned weights are zero\n", 100.0 * static_cast<double>(zeros) / total);
  std::printf("size          %s -> %s\n", format_bytes(s->input_bytes).c_str(), format_bytes(s->output_bytes).c_str());
  std::printf("time          %.2f s\n", s->seconds);
  if (pruned > 0) {
    Table t({"PRUNED TENSOR", "PRUNED", "ZEROS", "OF", "SPARSITY"});
    for (const auto& r : s->tensors) {
      if (!r.prune) continue;
      t.add({r.name, format_count(r.prune->pruned), format_count(r.prune->zeros), format_count(r.prune->total),
             fmt::format("{:.2f}%", r.prune->sparsity() * 100)});
    }
    std::printf("\n%s", t.render().c_str());
  }
  return kExitOk;
}

}  // namespace

void add_compress_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<CompressArgs>();
  CLI::App* cmd = app.add_subcommand("compress", "Prune/quantize a model on this machine, in one process");
  cmd->add_option("MODEL_DIR", args->model_dir, "Hugging Face model folder")->required();
  cmd->add_option("OUT_DIR", args->out_dir, "New folder for the checkpoint, or new .gguf file with --format gguf (must not exist)")->required();
  cmd->add_option("--max-shard-size", args->max_shard_size, "Largest safetensors file")->capture_default_str();
  cmd->add_option("--device", args->device, "cpu, auto or cuda:N (NF4, pruning, calibration on the GPU)")
      ->capture_default_str();
  cmd->add_option("--gpu-memory", args->gpu_memory, "Device memory the GPU work may use (default: what is free)");
  cmd->add_option("-o,--output", args->output, "table or json")->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  add_compress_flags(cmd, &args->flags);
  cmd->callback([args, exit_code] { *exit_code = run_compress(*args); });
}

}  // namespace sp::cli
