// shardpress inspect MODEL_DIR: what the model is, how it will be cut into shards, and
// whether each shard's task fits a worker's memory; inspect FILE.gguf: what a GGUF file holds.
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>

#include "checkpoint/gguf_export.h"
#include "checkpoint/gguf_model.h"
#include "cli/commands.h"
#include "cli/compress_flags.h"
#include "formats/token_ids.h"
#include "cli/output.h"
#include "common/byte_size.h"
#include "fmt/format.h"
#include "fmt/ranges.h"
#include "formats/model.h"
#include "nlohmann/json.hpp"
#include "worker/device.h"
#include "ops/task_memory.h"

namespace sp::cli {
namespace {

struct InspectArgs {
  std::string model_dir;
  std::string worker_memory = "11GiB", gpu_memory = "11GiB";
  std::string output = "table";
  CompressFlags flags;
};

std::string task_name(const ModelShard& s, const CompressSettings& c) {
  if (s.kind != ShardKind::kLayer) return "copy";
  std::string t;
  if (c.prune) t = c.prune->method == PruneMethod::kMagnitude ? "prune" : std::string(prune_method_name(c.prune->method));
  if (c.quantize) t += std::string(t.empty() ? "" : "+") + (c.quant_method == QuantMethod::kGptq ? "gptq" : "quantize");
  return needs_calibration(c) ? "calibrate+" + t : t;
}

// --format gguf: the type of every tensor (llama-quantize's rules for the mixes, the
// fallbacks), bytes and bits per weight, from the header alone.
int inspect_gguf(const InspectArgs& a, const JobSettings& job, const ModelDescription& model) {
  GgufExportOptions options;
  options.type = *job.compress.gguf;
  auto imatrix = read_imatrix_option(job);
  if (!imatrix.ok()) return report_error(imatrix.status());
  if (*imatrix) options.imatrix = &**imatrix;
  auto plan = plan_gguf(model, options);
  if (!plan.ok()) return report_error(plan.status());
  const double bpw = plan->weights ? 8.0 * static_cast<double>(plan->weight_bytes) / static_cast<double>(plan->weights) : 0;
  struct ByType {
    int tensors = 0;
    uint64_t params = 0, bytes = 0;
  };
  std::map<std::string, ByType> by_type;
  for (const auto& t : plan->plan) {
    uint64_t n = 1;
    for (int64_t d : t.ne) n *= static_cast<uint64_t>(d);
    auto& b = by_type[std::string(ggml_traits(t.type).name)];
    ++b.tensors, b.params += n, b.bytes += t.bytes;
  }
  if (a.output == "json") {
    nlohmann::ordered_json j;
    j["model"] = a.model_dir;
    j["model_type"] = model.config.model_type;
    j["parameters"] = model.params;
    j["gguf_type"] = options.type.name;
    j["tensor_bytes"] = plan->bytes;
    j["bits_per_weight"] = bpw;
    j["fallbacks"] = plan->fallbacks;
    nlohmann::ordered_json ts = nlohmann::ordered_json::array();
    for (const auto& t : plan->plan)
      ts.push_back({{"name", t.name}, {"type", ggml_traits(t.type).name}, {"ne", t.ne}, {"bytes", t.bytes},
                    {"importance", !t.importance.empty()}});
    j["tensors"] = ts;
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::string out;
  out += fmt::format("model          {}\n", a.model_dir);
  out += fmt::format("architecture   {} ({}), {} layers, {} parameters\n", arch_class_name(model.config.arch),
                     model.config.model_type, model.config.num_layers, format_count(model.params));
  out += fmt::format("GGUF           {}{}: {} of tensors, {:.2f} bits per weight (quantized tensors)\n",
                     options.type.name, *imatrix ? " with an importance matrix" : "", format_bytes(plan->bytes), bpw);
  Table t({"TYPE", "TENSORS", "PARAMS", "BYTES"});
  for (const auto& [name, b] : by_type)
    t.add({name, std::to_string(b.tensors), format_count(b.params), format_bytes(b.bytes)});
  out += "\n" + t.render();
  const std::string base(ggml_traits(options.type.base).name);
  Table x({"TENSOR", "TYPE", "SHAPE (ne)", "BYTES"});
  size_t listed = 0;
  for (const auto& p : plan->plan) {
    const std::string type(ggml_traits(p.type).name);
    if (type == base || (p.type == GgmlType::kF32 && p.ne.size() == 1)) continue;
    x.add({p.name, type, fmt::format("{}", fmt::join(p.ne, "x")), format_bytes(p.bytes)});
    ++listed;
  }
  if (listed) out += fmt::format("\ntensors not in {} (llama-quantize's rules, fallbacks):\n", base) + x.render();
  for (const auto& f : plan->fallbacks) out += fmt::format("fallback       {}\n", f);
  std::fputs(out.c_str(), stdout);
  return kExitOk;
}

// A GGUF file (checkpoint/gguf_model: checked against the model its metadata describes):
// its model, file type, bytes and bits per weight by type, the importance matrix and job
// it records, and the tensors not in the file type's base type.
int inspect_gguf_file(const InspectArgs& a) {
  auto m = GgufModel::open(a.model_dir);
  if (!m.ok()) return report_error(m.status());
  const GgufFile& g = (*m)->file();
  const ModelConfig& c = (*m)->desc().config;
  struct ByType {
    int tensors = 0;
    uint64_t params = 0, bytes = 0;
  };
  std::map<std::string, ByType> by_type;
  uint64_t weights = 0, weight_bytes = 0, total = 0;
  for (const auto& t : g.tensors) {
    uint64_t n = 1;
    for (int64_t d : t.ne) n *= static_cast<uint64_t>(d);
    const auto& tr = ggml_traits(static_cast<GgmlType>(t.type));
    const uint64_t bytes = ggml_nbytes(tr.type, static_cast<int64_t>(n));
    auto& b = by_type[std::string(tr.name)];
    ++b.tensors, b.params += n, b.bytes += bytes, total += bytes;
    if (t.ne.size() == 2) weights += n, weight_bytes += bytes;
  }
  const double bpw = weights ? 8.0 * static_cast<double>(weight_bytes) / static_cast<double>(weights) : 0;
  auto str = [&](const char* k) {
    auto it = g.strings.find(k);
    return it == g.strings.end() ? std::string() : it->second;
  };
  if (a.output == "json") {
    nlohmann::ordered_json j;
    j["file"] = a.model_dir;
    j["architecture"] = str("general.architecture");
    j["model_type"] = c.model_type;
    j["layers"] = c.num_layers;
    j["file_type"] = (*m)->file_type_name();
    j["tensors"] = g.tensors.size();
    j["tensor_bytes"] = total;
    j["bits_per_weight"] = bpw;
    nlohmann::ordered_json bt = nlohmann::ordered_json::object();
    for (const auto& [name, b] : by_type) bt[name] = {{"tensors", b.tensors}, {"params", b.params}, {"bytes", b.bytes}};
    j["by_type"] = bt;
    j["imatrix"] = str("quantize.imatrix.file");
    j["job"] = str("shardpress.job");
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::string out;
  out += fmt::format("file           {}\n", a.model_dir);
  out += fmt::format("architecture   {} ({}), {} layers\n", str("general.architecture"), c.model_type, c.num_layers);
  out += fmt::format("GGUF           {}: {} tensors, {} of tensors, {:.2f} bits per weight (2-D tensors)\n",
                     (*m)->file_type_name(), g.tensors.size(), format_bytes(total), bpw);
  if (!str("quantize.imatrix.file").empty())
    out += fmt::format("imatrix        {} (dataset {})\n", str("quantize.imatrix.file"), str("quantize.imatrix.dataset"));
  if (!str("shardpress.job").empty()) out += fmt::format("written by     shardpress {}\n", str("shardpress.job"));
  Table t({"TYPE", "TENSORS", "PARAMS", "BYTES"});
  for (const auto& [name, b] : by_type) t.add({name, std::to_string(b.tensors), format_count(b.params), format_bytes(b.bytes)});
  out += "\n" + t.render();
  std::fputs(out.c_str(), stdout);
  return kExitOk;
}

int run_inspect(const InspectArgs& a) {
  if (is_gguf_file(a.model_dir)) return inspect_gguf_file(a);
  auto budget = parse_byte_size(a.worker_memory);
  if (!budget.ok()) return report_error(annotate(budget.status(), "--worker-memory"));
  auto job = to_settings(a.flags, /*need_ids=*/false);
  if (!job.ok()) return report_error(job.status());
  const CompressSettings* settings = &job->compress;
  auto opened = open_model(a.model_dir);
  if (!opened.ok()) return report_error(opened.status());
  const ModelFiles* files = &opened->files;
  const ModelDescription* model = &opened->desc;
  const ModelConfig& c = model->config;
  if (job->compress.gguf) return inspect_gguf(a, *job, *model);

  // Calibrated methods: activations of samples x seq_len tokens (the file's line length
  // when --calib-ids is given, else --seq-len, else 2048).
  const bool calibrated = job->calibration.has_value();
  const CalibrationSettings calib = job->calibration.value_or(CalibrationSettings{});
  CalibrationShape data{calib.samples, calib.seq_len > 0 ? calib.seq_len : 2048};
  if (calibrated && !calib.ids.empty()) {
    auto ids = read_token_ids(calib.ids, c.vocab_size, calib.samples, calib.seq_len);
    if (!ids.ok()) return report_error(ids.status());
    data = {ids->sequences, ids->seq_len};
  }
  uint64_t linear = 0, largest_task = 0;
  std::vector<TaskMemory> mem;
  for (const auto& s : model->shards) {
    linear += s.linear_params;
    mem.push_back(calibrated && s.kind == ShardKind::kLayer ? estimate_calibration_memory(s, c, *settings, data)
                                                             : estimate_task_memory(s, *settings));
    largest_task = std::max(largest_task, mem.back().total());
  }
  const std::vector<Stage> stages = calibrated ? plan_stages(*model, *settings, data, *budget) : std::vector<Stage>{};
  auto gpu_budget = parse_byte_size(a.gpu_memory);
  if (!gpu_budget.ok()) return report_error(annotate(gpu_budget.status(), "--gpu-memory"));
  const GpuCalibrationPlan gpu = plan_gpu_calibration(c, *settings, data.sequences, data.tokens, *gpu_budget);
  size_t sliding = 0;
  for (auto k : c.layer_types) sliding += k == AttentionKind::kSliding;

  if (a.output == "json") {
    nlohmann::ordered_json j;
    j["model"] = a.model_dir;
    j["architecture"] = arch_class_name(c.arch);
    j["model_type"] = c.model_type;
    j["layers"] = c.num_layers;
    j["hidden_size"] = c.hidden_size;
    j["intermediate_size"] = c.intermediate_size;
    j["num_attention_heads"] = c.num_heads;
    j["num_key_value_heads"] = c.num_kv_heads;
    j["head_dim"] = c.head_dim;
    j["vocab_size"] = c.vocab_size;
    j["tie_word_embeddings"] = c.tie_word_embeddings;
    j["sliding_layers"] = sliding;
    j["parameters"] = model->params;
    j["linear_parameters"] = linear;
    nlohmann::ordered_json by = nlohmann::ordered_json::object();
    for (const auto& [dt, b] : model->bytes_by_dtype) by[std::string(dtype_name(dt))] = b;
    j["bytes_by_dtype"] = by;
    j["files"] = files->files().size();
    j["ignored_tensors"] = model->ignored;
    j["compression"] = describe(*settings);
    j["worker_memory"] = *budget;
    nlohmann::ordered_json shards = nlohmann::ordered_json::array();
    for (size_t i = 0; i < model->shards.size(); ++i) {
      const auto& s = model->shards[i];
      shards.push_back({{"id", s.id},
                        {"tensors", s.tensors.size()},
                        {"params", s.params},
                        {"bytes", s.bytes},
                        {"task", task_name(s, *settings)},
                        {"peak_memory", mem[i].total()},
                        {"fits", mem[i].total() <= *budget}});
    }
    j["shards"] = shards;
    if (calibrated) {
      j["calibration"] = {{"samples", data.sequences}, {"seq_len", data.tokens}};
      nlohmann::ordered_json st = nlohmann::ordered_json::array();
      for (const auto& g : stages)
        st.push_back({{"first_layer", g.first_layer}, {"last_layer", g.last_layer}, {"weight_bytes", g.weight_bytes},
                      {"peak_task", g.peak_task}, {"total", g.total()}, {"fits", g.fits}});
      j["stages"] = st;
      nlohmann::ordered_json g = {{"device_memory", gpu.budget},
                                  {"sequences_per_forward_batch", gpu.sequences_per_batch},
                                  {"forward_bytes", gpu.forward_bytes}};
      nlohmann::ordered_json pj = nlohmann::ordered_json::array();
      for (const auto& p : gpu.projections)
        pj.push_back({{"name", p.name}, {"rows", p.rows}, {"cols", p.cols}, {"loops_side_by_side", p.loops},
                      {"candidates", p.candidates}, {"bytes", p.bytes}});
      g["gptq"] = pj;
      j["gpu_worker"] = g;
    }
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }

  std::string dtypes;
  for (const auto& [dt, b] : model->bytes_by_dtype)
    dtypes += fmt::format("{}{} {}", dtypes.empty() ? "" : ", ", dtype_name(dt), format_bytes(b));
  std::string out;
  out += fmt::format("model          {}\n", a.model_dir);
  out += fmt::format("architecture   {} ({}), {} layers, hidden {}, intermediate {}\n",
                     arch_class_name(c.arch), c.model_type, c.num_layers, c.hidden_size, c.intermediate_size);
  out += fmt::format("attention      {} heads, {} KV heads, head_dim {}, {}\n", c.num_heads, c.num_kv_heads,
                     c.head_dim,
                     sliding ? fmt::format("{} sliding + {} full layers", sliding, c.num_layers - sliding)
                             : std::string("full attention in every layer"));
  out += fmt::format("vocabulary     {}{}\n", c.vocab_size, c.tie_word_embeddings ? ", tied embeddings (no lm_head)" : "");
  out += fmt::format("parameters     {} ({} in projection weights)\n", format_count(model->params), format_count(linear));
  out += fmt::format("bytes          {}\n", dtypes);
  out += fmt::format("files          {} safetensors file{}\n", files->files().size(), files->files().size() == 1 ? "" : "s");
  out += fmt::format("compression    {}\n", describe(*settings));
  out += fmt::format("worker memory  {}: largest task needs {} ({})\n\n", format_bytes(*budget),
                     format_bytes(largest_task), largest_task <= *budget ? "fits" : "DOES NOT FIT");
  Table t({"SHARD", "TENSORS", "PARAMS", "BYTES", "TASK", "PEAK MEMORY", "FITS"});
  for (size_t i = 0; i < model->shards.size(); ++i) {
    const auto& s = model->shards[i];
    t.add({s.id, std::to_string(s.tensors.size()), format_count(s.params), format_bytes(s.bytes),
           task_name(s, *settings), format_bytes(mem[i].total()), mem[i].total() <= *budget ? "yes" : "no"});
  }
  out += t.render();
  if (calibrated) {
    out += fmt::format("\ncalibration    {} samples x {} tokens; stages of contiguous layers for a {} worker:\n",
                       data.sequences, data.tokens, format_bytes(*budget));
    Table st({"STAGE", "LAYERS", "WEIGHTS", "LARGEST LAYER TASK", "STAGE MEMORY", "FITS"});
    for (size_t i = 0; i < stages.size(); ++i) {
      const Stage& g = stages[i];
      st.add({std::to_string(i),
              g.first_layer == g.last_layer ? std::to_string(g.first_layer)
                                            : fmt::format("{}-{}", g.first_layer, g.last_layer),
              format_bytes(g.weight_bytes), format_bytes(g.peak_task), format_bytes(g.total()), g.fits ? "yes" : "no"});
    }
    out += st.render();
    // The same layer on a GPU worker with --gpu-memory of device memory.
    out += fmt::format("\nGPU worker     {} of device memory: ", format_bytes(gpu.budget));
    out += gpu.sequences_per_batch > 0
               ? fmt::format("forward + Hessians in micro-batches of {} of {} sequences ({})\n",
                             gpu.sequences_per_batch, data.sequences, format_bytes(gpu.forward_bytes))
               : std::string("the forward of one sequence does not fit: it runs on the CPU\n");
    if (!gpu.projections.empty()) {
      Table gt({"PROJECTION", "SHAPE", "LOOPS SIDE BY SIDE", "DEVICE MEMORY", "ON"});
      for (const auto& p : gpu.projections)
        gt.add({p.name, fmt::format("{}x{}", p.rows, p.cols), fmt::format("{} of {}", p.loops, p.candidates),
                format_bytes(p.bytes), p.loops > 0 ? "GPU" : "CPU (too big)"});
      out += gt.render();
    }
  }
  std::fputs(out.c_str(), stdout);
  return kExitOk;
}

}  // namespace

void add_inspect_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* cmd = app.add_subcommand("inspect", "Describe a model and the shards and tasks it will be cut into, or a GGUF file");
  cmd->add_option("MODEL_DIR", args->model_dir, "Hugging Face model folder, or a GGUF file")->required();
  cmd->add_option("--worker-memory", args->worker_memory, "Memory budget of one worker")->capture_default_str();
  cmd->add_option("--gpu-memory", args->gpu_memory, "Device memory of a GPU worker (its plan)")->capture_default_str();
  cmd->add_option("-o,--output", args->output, "table or json")->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  add_compress_flags(cmd, &args->flags);
  cmd->callback([args, exit_code] { *exit_code = run_inspect(*args); });
}

}  // namespace sp::cli
