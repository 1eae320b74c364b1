#include "ops/compress_shard.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "common/float_convert.h"
#include "fmt/format.h"
#include "ops/double_quant.h"
#include "ops/finite_check.h"

namespace sp {
namespace {

template <typename T>
std::vector<uint8_t> as_bytes(const T* p, size_t n) {
  const auto* b = reinterpret_cast<const uint8_t*>(p);
  return std::vector<uint8_t>(b, b + n * sizeof(T));
}

std::vector<uint8_t> copy_bytes(std::span<const uint8_t> s) { return {s.begin(), s.end()}; }

}  // namespace

std::vector<OutputTensor> bnb_output_tensors(const ModelTensor& meta, std::vector<uint8_t> packed,
                                             const std::vector<float>& absmax, const std::optional<DoubleQuantized>& dq,
                                             const Nf4Settings& s) {
  const int64_t rows = meta.stored.shape[0], cols = meta.stored.shape[1];
  const std::string json = quant_state_json(s.blocksize, meta.stored.dtype, rows, cols,
                                            dq ? std::optional<float>(dq->offset) : std::nullopt, s.quant_type);
  std::vector<TensorSpec> specs =
      nf4_weight_specs(meta.name, rows, cols, s.blocksize, dq.has_value(), json.size(), s.quant_type);
  std::vector<OutputTensor> out;
  out.push_back({specs[0], std::move(packed)});
  out.push_back({specs[1], dq ? dq->codes : as_bytes(absmax.data(), absmax.size())});
  out.push_back({specs[2], as_bytes(bnb4_code(s.quant_type), kNf4Levels)});
  if (dq) {
    out.push_back({specs[3], as_bytes(dq->nested_absmax.data(), dq->nested_absmax.size())});
    out.push_back({specs[4], as_bytes(dq->map.data(), dq->map.size())});
  }
  out.push_back({specs.back(), as_bytes(json.data(), json.size())});
  return out;
}

std::vector<OutputTensor> int8_output_tensors(const ModelTensor& meta, const Int8Rows& q) {
  const std::vector<TensorSpec> specs = int8_weight_specs(meta.name, meta.stored.shape[0], meta.stored.shape[1]);
  return {{specs[0], as_bytes(q.codes.data(), q.codes.size())},
          {specs[1], as_bytes(q.scb.data(), q.scb.size())},
          {specs[2], std::vector<uint8_t>{0}}};  // weight_format 0: row-major
}

absl::StatusOr<std::vector<OutputTensor>> rtn_output_tensors(const ModelTensor& meta, std::span<const uint8_t> bytes,
                                                             DType dtype, const Nf4Settings& s,
                                                             const Nf4Backend& backend) {
  const int64_t rows = meta.stored.shape[0], cols = meta.stored.shape[1];
  if (s.quant_type == BnbType::kInt8) {
    SP_ASSIGN_OR_RETURN(const Int8Rows q8, int8_quantize(bytes, dtype, rows, cols));
    return int8_output_tensors(meta, q8);
  }
  SP_ASSIGN_OR_RETURN(Nf4Tensor q, nf4_quantize(bytes, dtype, rows, cols, s.blocksize, bnb4_backend(s.quant_type, backend)));
  std::optional<DoubleQuantized> dq;
  if (s.double_quant) dq = double_quantize(q.absmax);
  return bnb_output_tensors(meta, std::move(q.packed), q.absmax, dq, s);
}

bool needs_calibration(const CompressSettings& s) {
  return ((s.quantize || s.gguf) && s.quant_method == QuantMethod::kGptq) || (s.gguf && s.gguf_importance) ||
         (s.prune && s.prune->method != PruneMethod::kMagnitude);
}

absl::Status validate(const CompressSettings& s) {
  auto bad = [](const std::string& msg) { return absl::InvalidArgumentError(msg); };
  if (s.gguf) {
    if (s.prune || s.quantize)
      return absl::UnimplementedError("format gguf is written without pruning so far (pruning + GGUF: not yet)");
    if (s.gguf_importance && s.quant_method != QuantMethod::kRtn)
      return bad("importance values weigh round-to-nearest; GPTQ weighs the columns by its own Hessian");
    if (!(s.gptq.damp > 0 && s.gptq.damp < 1))
      return bad(fmt::format("'quantize.damp' is {}; expected a number in (0, 1)", s.gptq.damp));
    if (s.gptq.block_size < 1 || s.gptq.block_size > 4096)
      return bad(fmt::format("'quantize.gptq_block_size' is {}; expected 1 to 4096", s.gptq.block_size));
    return absl::OkStatus();
  }
  if (s.gguf_importance) return bad("importance values (quantize.imatrix, calibrate.ids with rtn) are for format gguf");
  if (!s.prune && !s.quantize) return bad("nothing to do: prune.method is none and quantize.format is none");
  if (s.quant_method == QuantMethod::kGptq && !s.quantize)
    return bad("'quantize.method' gptq quantizes to a 4-bit grid: it needs quantize.format nf4, fp4 or gguf");
  if (s.prune && s.prune->scope == PruneScope::kTwoFour && s.prune->sparsity != 0.5)
    return bad(fmt::format(
        "2:4 pruning removes exactly 2 of every 4 weights: a sparsity of {:g} cannot apply (leave the sparsity out, "
        "or give 0.5)", s.prune->sparsity));
  if (s.prune && !(s.prune->sparsity >= 0.0 && s.prune->sparsity < 1.0))
    return bad(fmt::format("'prune.sparsity' is {}; expected a number in [0, 1)", s.prune->sparsity));
  if (s.quantize) {
    if (!nf4_blocksize_ok(s.quantize->blocksize))
      return bad(fmt::format("'quantize.blocksize' is {}; expected 32, 64, 128, 256, 512, 1024, 2048 or 4096",
                             s.quantize->blocksize));
    if (s.quantize->compute_dtype != DType::kBF16 && s.quantize->compute_dtype != DType::kF16 &&
        s.quantize->compute_dtype != DType::kF32)
      return bad("'quantize.compute_dtype' must be bfloat16, float16 or float32");
  }
  if (!(s.gptq.damp > 0 && s.gptq.damp < 1))
    return bad(fmt::format("'quantize.damp' is {}; expected a number in (0, 1)", s.gptq.damp));
  if (!(s.gptq.scale_search >= 0 && s.gptq.scale_search <= 0.5))
    return bad(fmt::format("'quantize.scale_search' is {}; expected a number in [0, 0.5]", s.gptq.scale_search));
  if (s.gptq.block_size < 1 || s.gptq.block_size > 4096)
    return bad(fmt::format("'quantize.gptq_block_size' is {}; expected 1 to 4096", s.gptq.block_size));
  const bool obs = (s.quantize && s.quant_method == QuantMethod::kGptq) ||
                   (s.prune && s.prune->method == PruneMethod::kSparseGpt);
  if (obs && s.gptq.act_order && s.prune && s.prune->scope == PruneScope::kTwoFour)
    return bad("'quantize.act_order' cannot be combined with 2:4 pruning (its groups of 4 are in column order)");
  return absl::OkStatus();
}

std::string describe(const CompressSettings& s) {
  if (s.gguf)
    return fmt::format("{}GGUF {}{}{}", s.quant_method == QuantMethod::kGptq ? "GPTQ-" : "", s.gguf->name,
                       s.quant_method == QuantMethod::kGptq && s.gptq.act_order ? " (act-order)" : "",
                       s.gguf_importance ? " (importance-weighted)" : "");
  std::string out;
  if (s.prune) {
    const std::string_view m = prune_method_name(s.prune->method);
    out = s.prune->scope == PruneScope::kTwoFour
              ? fmt::format("{} 2:4", m)
              : fmt::format("{} {:g}% per {}", m, s.prune->sparsity * 100, prune_scope_name(s.prune->scope));
  }
  if (s.quantize) {
    if (!out.empty()) out += " + ";
    if (s.quantize->quant_type == BnbType::kInt8) {
      out += fmt::format("{}int8 (LLM.int8, row-wise{})", s.quant_method == QuantMethod::kGptq ? "GPTQ-" : "",
                         s.quant_method == QuantMethod::kGptq && s.gptq.act_order ? ", act-order" : "");
      return out;
    }
    out += fmt::format("{}{} (block {}{}{}{})", s.quant_method == QuantMethod::kGptq ? "GPTQ-" : "",
                       bnb_type_label(s.quantize->quant_type),
                       s.quantize->blocksize, s.quantize->double_quant ? ", double quant" : "",
                       s.quant_method == QuantMethod::kGptq && s.gptq.act_order ? ", act-order" : "",
                       s.quant_method == QuantMethod::kGptq && s.gptq.scales == ScaleChoice::kWeighted ? ", weighted scales" : "");
  }
  return out;
}

bool compresses(const ModelTensor& t, const CompressSettings& s) {
  return s.gguf.has_value() || (is_linear_weight(t.role) && (s.prune || s.quantize));
}

std::vector<TensorSpec> output_specs(const ModelTensor& t, const CompressSettings& s) {
  if (compresses(t, s) && s.quantize && t.stored.shape.size() == 2 && s.quantize->quant_type == BnbType::kInt8)
    return int8_weight_specs(t.name, t.stored.shape[0], t.stored.shape[1]);
  if (compresses(t, s) && s.quantize && t.stored.shape.size() == 2) {
    std::vector<TensorSpec> specs = nf4_weight_specs(t.name, t.stored.shape[0], t.stored.shape[1], s.quantize->blocksize,
                                                     s.quantize->double_quant, kMaxQuantStateBytes, s.quantize->quant_type);
    specs.back().max_nbytes = kMaxQuantStateBytes;  // the quant_state JSON: its length depends on the data
    return specs;
  }
  return {TensorSpec{t.name, t.stored.dtype, t.stored.shape}};
}

absl::StatusOr<ShardResult> compress_shard(std::span<const InputTensor> inputs,
                                           const CompressSettings& settings,
                                           const Nf4Backend& backend, const PruneDevice* prune_device) {
  SP_RETURN_IF_ERROR(validate(settings));
  ShardResult result;
  for (const InputTensor& in : inputs) {
    const ModelTensor& meta = *in.meta;
    if (in.bytes.size() != meta.stored.nbytes())
      return absl::InvalidArgumentError(fmt::format("{}: {} bytes given, {} expected", meta.name,
                                                    in.bytes.size(), meta.stored.nbytes()));
    TensorReport report{meta.name, meta.role};
    if (settings.gguf) {  // the planned GGUF tensor, under its GGUF name
      if (!in.gguf) return absl::InvalidArgumentError(fmt::format("{}: no GGUF target in the plan", meta.name));
      SP_RETURN_IF_ERROR(check_finite(meta.name, in.bytes, meta.stored.dtype, meta.stored.shape));
      const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
      result.groups.push_back({{TensorSpec{in.gguf->name, DType::kU8, {static_cast<int64_t>(in.gguf->bytes)}},
                                gguf_tensor_bytes(*in.gguf, in.bytes, meta.stored.dtype, meta.stored.shape, threads)}});
      report.quantized = ggml_traits(in.gguf->type).block > 1;
      result.reports.push_back(std::move(report));
      continue;
    }
    if (!compresses(meta, settings)) {  // kept as it is: must be finite
      SP_RETURN_IF_ERROR(check_finite(meta.name, in.bytes, meta.stored.dtype, meta.stored.shape));
      result.groups.push_back({{TensorSpec{meta.name, meta.stored.dtype, meta.stored.shape},
                                copy_bytes(in.bytes)}});
      result.reports.push_back(std::move(report));
      continue;
    }
    if (needs_calibration(settings))  // pass-through shards (embeddings, norms) are fine
      return absl::FailedPreconditionError(fmt::format(
          "{}: {} needs calibration data: it runs as a calibration task, not a plain shard task", meta.name,
          describe(settings)));
    const int64_t rows = meta.stored.shape[0], cols = meta.stored.shape[1];
    std::span<const uint8_t> bytes = in.bytes;
    DType dtype = meta.stored.dtype;
    std::vector<float> pruned;
    if (settings.prune) {
      pruned = to_float32(in.bytes, meta.stored.dtype);
      auto st = prune_magnitude(pruned, rows, cols, settings.prune->scope, settings.prune->sparsity, prune_device);
      if (!st.ok()) return annotate(st.status(), meta.name);
      report.prune = *st;
      bytes = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(pruned.data()),
                                       pruned.size() * sizeof(float));
      dtype = DType::kF32;  // exact image of the stored values, minus the pruned ones
    }
    if (settings.quantize) {
      auto q = rtn_output_tensors(meta, bytes, dtype, *settings.quantize, backend);
      if (!q.ok()) return annotate(q.status(), meta.name);
      report.quantized = true;
      result.groups.push_back(std::move(*q));
    } else {
      result.groups.push_back({{TensorSpec{meta.name, meta.stored.dtype, meta.stored.shape},
                                from_float32(pruned, meta.stored.dtype)}});
    }
    result.reports.push_back(std::move(report));
  }
  return result;
}

}  // namespace sp
