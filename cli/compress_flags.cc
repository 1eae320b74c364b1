#include "cli/compress_flags.h"

#include "fmt/format.h"

namespace sp::cli {

void add_compress_flags(CLI::App* cmd, CompressFlags* f) {
  cmd->add_option("--prune", f->prune, "Pruning method: none or magnitude")
      ->check(CLI::IsMember({"none", "magnitude"}))->capture_default_str();
  cmd->add_option("--sparsity", f->sparsity, "Fraction of each group pruned, in [0, 1) (not for 2:4)")
      ->capture_default_str();
  cmd->add_option("--scope", f->scope, "Pruning group: tensor, row or 2:4")
      ->check(CLI::IsMember({"tensor", "row", "2:4"}))->capture_default_str();
  cmd->add_flag("--no-quantize", f->no_quantize, "Keep weights in their dtype (prune only)");
  cmd->add_option("--blocksize", f->blocksize, "NF4 block size: 32, 64, 128, ..., 4096")->capture_default_str();
  cmd->add_flag("--no-double-quant", f->no_double_quant, "Store absmax as float32 instead of 8-bit codes");
  cmd->add_option("--compute-dtype", f->compute_dtype, "bnb_4bit_compute_dtype: bfloat16, float16 or float32")
      ->check(CLI::IsMember({"bfloat16", "float16", "float32"}))->capture_default_str();
}

absl::StatusOr<CompressSettings> to_settings(const CompressFlags& f) {
  CompressSettings s;
  if (f.prune == "magnitude") s.prune = PruneSettings{*prune_scope_from_name(f.scope), f.sparsity};
  if (f.no_quantize) {
    s.quantize.reset();
  } else {
    s.quantize = Nf4Settings{f.blocksize, !f.no_double_quant, *dtype_from_torch_name(f.compute_dtype)};
  }
  if (!s.prune && !s.quantize)
    return absl::InvalidArgumentError("nothing to do: --no-quantize without --prune magnitude");
  SP_RETURN_IF_ERROR(validate(s));
  return s;
}

}  // namespace sp::cli
