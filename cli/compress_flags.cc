#include "cli/compress_flags.h"

#include "fmt/format.h"

namespace sp::cli {

void add_compress_flags(CLI::App* cmd, CompressFlags* f) {
  cmd->add_option("--prune", f->prune, "Pruning method: none, magnitude, wanda or sparsegpt")
      ->check(CLI::IsMember({"none", "magnitude", "wanda", "sparsegpt"}))->capture_default_str();
  cmd->add_option("--sparsity", f->sparsity, "Fraction of each group pruned, in [0, 1) (default 0.3; 2:4 is 0.5)");
  cmd->add_option("--scope", f->scope, "Pruning group: tensor, row or 2:4")
      ->check(CLI::IsMember({"tensor", "row", "2:4"}))->capture_default_str();
  cmd->add_flag("--no-quantize", f->no_quantize, "Keep weights in their dtype (prune only)");
  cmd->add_option("--blocksize", f->blocksize, "NF4 block size: 32, 64, 128, ..., 4096")->capture_default_str();
  cmd->add_flag("--no-double-quant", f->no_double_quant, "Store absmax as float32 instead of 8-bit codes");
  cmd->add_option("--compute-dtype", f->compute_dtype, "bnb_4bit_compute_dtype: bfloat16, float16 or float32")
      ->check(CLI::IsMember({"bfloat16", "float16", "float32"}))->capture_default_str();
  cmd->add_option("--method", f->method, "NF4 rounding: rtn (bitsandbytes) or gptq (error-compensated, calibrated)")
      ->check(CLI::IsMember({"rtn", "gptq"}))->capture_default_str();
  cmd->add_flag("--act-order", f->act_order, "GPTQ: visit columns by decreasing Hessian diagonal");
  cmd->add_flag("--true-sequential", f->true_sequential,
                "Inside a layer, calibrate o, gate/up and down on the already compressed projections before them");
  cmd->add_option("--scale-search", f->scale_search,
                  "GPTQ: per row, try NF4 scales within +-this fraction of absmax (steps of 0.02); 0 = absmax")
      ->capture_default_str();
  cmd->add_option("--damp", f->damp, "GPTQ/SparseGPT damping, fraction of the mean Hessian diagonal")
      ->capture_default_str();
  cmd->add_option("--calib-ids", f->calib_ids, "Calibration token ids (one sequence per line), for gptq/wanda/sparsegpt");
  cmd->add_option("--calib-samples", f->calib_samples, "Calibration sequences (the file's first lines)")
      ->capture_default_str();
  cmd->add_option("--seq-len", f->seq_len, "Calibration tokens per sequence (default: the first line's length)");
  cmd->add_option("--calib-mode", f->calib_mode,
                  "sequential: each layer calibrated on the compressed previous layers; pipelined: on the original model")
      ->check(CLI::IsMember({"sequential", "pipelined"}))->capture_default_str();
}

absl::StatusOr<CompressSettings> to_settings(const CompressFlags& f, bool need_ids) {
  CompressSettings s;
  if (f.prune != "none") {
    const PruneScope scope = *prune_scope_from_name(f.scope);
    const double dflt = scope == PruneScope::kTwoFour ? 0.5 : 0.3;
    s.prune = PruneSettings{scope, f.sparsity.value_or(dflt), PruneMethod::kMagnitude};
    if (f.prune == "wanda") s.prune->method = PruneMethod::kWanda;
    if (f.prune == "sparsegpt") s.prune->method = PruneMethod::kSparseGpt;
  }
  s.quant_method = f.method == "gptq" ? QuantMethod::kGptq : QuantMethod::kRtn;
  s.gptq.act_order = f.act_order;
  s.gptq.true_sequential = f.true_sequential;
  s.gptq.scale_search = f.scale_search;
  s.gptq.damp = f.damp;
  if (f.no_quantize) {
    s.quantize.reset();
  } else {
    s.quantize = Nf4Settings{f.blocksize, !f.no_double_quant, *dtype_from_torch_name(f.compute_dtype)};
  }
  if (!s.prune && !s.quantize)
    return absl::InvalidArgumentError("nothing to do: --no-quantize without --prune");
  SP_RETURN_IF_ERROR(validate(s));
  if (need_ids && needs_calibration(s) && f.calib_ids.empty())
    return absl::InvalidArgumentError(fmt::format("{} needs calibration text: give --calib-ids FILE", describe(s)));
  return s;
}

}  // namespace sp::cli
