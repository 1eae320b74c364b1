#include "cli/compress_flags.h"

#include "fmt/format.h"

namespace sp::cli {

void add_compress_flags(CLI::App* cmd, CompressFlags* f) {
  const shardpress::v1::JobSpec d = default_job_spec();
  cmd->add_option("--prune", f->prune, "Pruning method: none, magnitude, wanda or sparsegpt (default none)")
      ->check(CLI::IsMember({"none", "magnitude", "wanda", "sparsegpt"}));
  cmd->add_option("--sparsity", f->sparsity,
                  fmt::format("Fraction of each group pruned, in [0, 1) (default {:g}; 2:4 is 0.5)", d.prune().sparsity()));
  cmd->add_option("--scope", f->scope, "Pruning group: tensor, row or 2:4 (default row)")
      ->check(CLI::IsMember({"tensor", "row", "2:4"}));
  cmd->add_flag("--no-quantize", f->no_quantize, "Keep weights in their dtype (prune only)");
  cmd->add_option("--format", f->format,
                  "nf4 (bitsandbytes folder, default), fp4 (bitsandbytes FP4), int8 (LLM.int8 8-bit) or gguf (one llama.cpp file)")
      ->check(CLI::IsMember({"nf4", "fp4", "int8", "gguf"}));
  cmd->add_option("--type", f->type, fmt::format("--format gguf: the llama.cpp type or mix, one of {}", gguf_ftype_names()));
  cmd->add_option("--imatrix", f->imatrix,
                  "--format gguf: weigh each column by this llama.cpp importance matrix (llama-imatrix's file), as "
                  "llama-quantize --imatrix does");
  cmd->add_option("--blocksize", f->blocksize,
                  fmt::format("NF4/FP4 block size: 32, 64, 128, ..., 4096 (default {})", d.quantize().blocksize()));
  cmd->add_flag("--no-double-quant", f->no_double_quant, "Store absmax as float32 instead of 8-bit codes");
  cmd->add_option("--compute-dtype", f->compute_dtype, "bnb_4bit_compute_dtype: bfloat16 (default), float16 or float32")
      ->check(CLI::IsMember({"bfloat16", "float16", "float32"}));
  cmd->add_option("--method", f->method, "Rounding: rtn (bitsandbytes / llama-quantize, default) or gptq (error-compensated, calibrated)")
      ->check(CLI::IsMember({"rtn", "gptq"}));
  auto* on = cmd->add_flag("--act-order", f->act_order,
                           "GPTQ: visit columns by decreasing Hessian diagonal (the default, except with 2:4)");
  cmd->add_flag("--no-act-order", f->no_act_order, "GPTQ: visit columns in order")->excludes(on);
  cmd->add_flag("--true-sequential", f->true_sequential,
                "Inside a layer, calibrate o, gate/up and down on the already compressed projections before them");
  cmd->add_option("--activations", f->activations,
                  "Layer boundaries handed between layers (tasks, in a job): float32 (default) or bfloat16 (half "
                  "the bytes, a small cost in quality)")
      ->check(CLI::IsMember({"float32", "bfloat16"}));
  cmd->add_option("--scale-search", f->scale_search,
                  fmt::format("GPTQ: per row, try NF4 scales within +-this fraction of absmax (steps of 0.02); 0 = "
                              "absmax (default {:g})",
                              d.quantize().scale_search()));
  cmd->add_option("--scales", f->scales,
                  fmt::format("GPTQ on nf4/fp4: search (per row, within --scale-search) or weighted (per block, "
                              "importance-weighted; default {})",
                              d.quantize().scales()))
      ->check(CLI::IsMember({"search", "weighted"}));
  cmd->add_option("--damp", f->damp,
                  fmt::format("GPTQ/SparseGPT damping, fraction of the mean Hessian diagonal (default {:g})",
                              d.quantize().damp()));
  cmd->add_option("--calib-ids", f->calib_ids, "Calibration token ids (one sequence per line), for gptq/wanda/sparsegpt; with --format gguf: "
                  "weigh each column by llama.cpp's importance values computed on them");
  cmd->add_option("--calib-samples", f->calib_samples,
                  fmt::format("Calibration sequences (the file's first lines; default {})", d.calibrate().samples()));
  cmd->add_option("--seq-len", f->seq_len, "Calibration tokens per sequence (default: the first line's length)");
  cmd->add_option("--calib-mode", f->calib_mode,
                  "sequential (default): each layer calibrated on the compressed previous layers; pipelined: on the "
                  "original model")
      ->check(CLI::IsMember({"sequential", "pipelined"}));
}

absl::StatusOr<JobSettings> to_settings(const CompressFlags& f, bool need_ids) {
  shardpress::v1::JobSpec spec = default_job_spec();
  spec.set_name("compress");
  spec.set_model("-");  // given as arguments, not part of the settings
  spec.set_output("-");
  auto* p = spec.mutable_prune();
  if (f.prune) p->set_method(*f.prune);
  if (f.sparsity) p->set_sparsity(*f.sparsity);
  if (f.scope) p->set_scope(*f.scope);
  auto* q = spec.mutable_quantize();
  if (f.format) q->set_format(*f.format);
  if (f.type) q->set_type(*f.type);
  if (f.imatrix) q->set_imatrix(*f.imatrix);
  if (f.no_quantize) q->set_format("none");
  if (f.blocksize) q->set_blocksize(*f.blocksize);
  if (f.no_double_quant) q->set_double_quant(false);
  if (f.compute_dtype) q->set_compute_dtype(*f.compute_dtype);
  if (f.method) q->set_method(*f.method);
  if (f.act_order || f.no_act_order) q->set_act_order(f.act_order);
  if (f.scale_search) q->set_scale_search(*f.scale_search);
  if (f.scales) q->set_scales(*f.scales);
  if (f.damp) q->set_damp(*f.damp);
  auto* c = spec.mutable_calibrate();
  if (f.activations) c->set_activations(*f.activations);
  apply_dependent_defaults(spec, f.sparsity.has_value(), f.act_order || f.no_act_order);
  c->set_true_sequential(f.true_sequential);
  // Without --calib-ids, inspect still plans (a stand-in name passes the check).
  // (Format gguf reads the ids only for importance values: no stand-in.)
  c->set_ids(f.calib_ids.value_or(need_ids || q->format() == "gguf" ? "" : "(no file)"));
  if (f.calib_samples) c->set_samples(static_cast<int32_t>(*f.calib_samples));
  if (f.seq_len) c->set_seq_len(static_cast<int32_t>(*f.seq_len));
  if (f.calib_mode) c->set_mode(*f.calib_mode);
  auto s = job_settings(spec);
  if (!s.ok()) {
    if (need_ids && !f.calib_ids && spec_needs_calibration(spec))
      return absl::InvalidArgumentError(
          fmt::format("{} needs calibration text: give --calib-ids FILE", describe_spec(spec)));
    return s.status();
  }
  if (s->calibration && !f.calib_ids) s->calibration->ids.clear();
  return s;
}

absl::StatusOr<std::optional<Imatrix>> read_imatrix_option(const JobSettings& settings) {
  if (settings.gguf_imatrix.empty()) return std::optional<Imatrix>();
  auto m = read_imatrix(settings.gguf_imatrix);
  if (!m.ok()) return annotate(m.status(), "--imatrix");
  return std::optional<Imatrix>(std::move(*m));
}

}  // namespace sp::cli
