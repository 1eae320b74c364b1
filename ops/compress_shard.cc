#include "ops/compress_shard.h"

#include <cstring>

#include "common/float_convert.h"
#include "fmt/format.h"
#include "ops/double_quant.h"

namespace sp {
namespace {

template <typename T>
std::vector<uint8_t> as_bytes(const T* p, size_t n) {
  const auto* b = reinterpret_cast<const uint8_t*>(p);
  return std::vector<uint8_t>(b, b + n * sizeof(T));
}

std::vector<uint8_t> copy_bytes(std::span<const uint8_t> s) { return {s.begin(), s.end()}; }

// The bitsandbytes tensors of one quantized weight.
absl::StatusOr<std::vector<OutputTensor>> quantize_weight(const ModelTensor& meta,
                                                          std::span<const uint8_t> bytes,
                                                          DType dtype, const Nf4Settings& s,
                                                          const Nf4Backend& backend) {
  const int64_t rows = meta.stored.shape[0], cols = meta.stored.shape[1];
  SP_ASSIGN_OR_RETURN(Nf4Tensor q, nf4_quantize(bytes, dtype, rows, cols, s.blocksize, backend));
  std::optional<DoubleQuantized> dq;
  if (s.double_quant) dq = double_quantize(q.absmax);
  const std::string json = quant_state_json(s.blocksize, meta.stored.dtype, rows, cols,
                                            dq ? std::optional<float>(dq->offset) : std::nullopt);
  std::vector<TensorSpec> specs =
      nf4_weight_specs(meta.name, rows, cols, s.blocksize, s.double_quant, json.size());
  std::vector<OutputTensor> out;
  out.push_back({specs[0], std::move(q.packed)});
  out.push_back({specs[1], dq ? std::move(dq->codes) : as_bytes(q.absmax.data(), q.absmax.size())});
  out.push_back({specs[2], as_bytes(kNf4Code, kNf4Levels)});
  if (dq) {
    out.push_back({specs[3], as_bytes(dq->nested_absmax.data(), dq->nested_absmax.size())});
    out.push_back({specs[4], as_bytes(dq->map.data(), dq->map.size())});
  }
  out.push_back({specs.back(), as_bytes(json.data(), json.size())});
  return out;
}

}  // namespace

absl::Status validate(const CompressSettings& s) {
  if (s.prune && s.prune->scope != PruneScope::kTwoFour &&
      !(s.prune->sparsity >= 0.0 && s.prune->sparsity < 1.0))
    return absl::InvalidArgumentError(
        fmt::format("prune sparsity {} must be in [0, 1)", s.prune->sparsity));
  if (s.quantize) {
    if (!nf4_blocksize_ok(s.quantize->blocksize))
      return absl::InvalidArgumentError(fmt::format(
          "quantize blocksize {} is not one bitsandbytes accepts (32, 64, 128, 256, 512, 1024, 2048, 4096)",
          s.quantize->blocksize));
    if (s.quantize->compute_dtype != DType::kBF16 && s.quantize->compute_dtype != DType::kF16 &&
        s.quantize->compute_dtype != DType::kF32)
      return absl::InvalidArgumentError("compute dtype must be bfloat16, float16 or float32");
  }
  return absl::OkStatus();
}

std::string describe(const CompressSettings& s) {
  std::string out;
  if (s.prune) {
    out = s.prune->scope == PruneScope::kTwoFour
              ? "magnitude 2:4"
              : fmt::format("magnitude {:g}% per {}", s.prune->sparsity * 100, prune_scope_name(s.prune->scope));
  }
  if (s.quantize) {
    if (!out.empty()) out += " + ";
    out += fmt::format("NF4 (block {}{})", s.quantize->blocksize, s.quantize->double_quant ? ", double quant" : "");
  }
  return out;
}

absl::StatusOr<ShardResult> compress_shard(std::span<const InputTensor> inputs,
                                           const CompressSettings& settings,
                                           const Nf4Backend& backend) {
  SP_RETURN_IF_ERROR(validate(settings));
  ShardResult result;
  for (const InputTensor& in : inputs) {
    const ModelTensor& meta = *in.meta;
    if (in.bytes.size() != meta.stored.nbytes())
      return absl::InvalidArgumentError(fmt::format("{}: {} bytes given, {} expected", meta.name,
                                                    in.bytes.size(), meta.stored.nbytes()));
    TensorReport report{meta.name, meta.role};
    const bool linear = is_linear_weight(meta.role);
    if (!linear || (!settings.prune && !settings.quantize)) {
      result.groups.push_back({{TensorSpec{meta.name, meta.stored.dtype, meta.stored.shape},
                                copy_bytes(in.bytes)}});
      result.reports.push_back(std::move(report));
      continue;
    }
    const int64_t rows = meta.stored.shape[0], cols = meta.stored.shape[1];
    std::span<const uint8_t> bytes = in.bytes;
    DType dtype = meta.stored.dtype;
    std::vector<float> pruned;
    if (settings.prune) {
      pruned = to_float32(in.bytes, meta.stored.dtype);
      auto st = prune_magnitude(pruned, rows, cols, settings.prune->scope, settings.prune->sparsity);
      if (!st.ok()) return annotate(st.status(), meta.name);
      report.prune = *st;
      bytes = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(pruned.data()),
                                       pruned.size() * sizeof(float));
      dtype = DType::kF32;  // exact image of the stored values, minus the pruned ones
    }
    if (settings.quantize) {
      auto q = quantize_weight(meta, bytes, dtype, *settings.quantize, backend);
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
