#include "checkpoint/gguf_verify.h"

#include <cmath>
#include <cstring>

#include "checkpoint/gguf_model.h"
#include "common/float_convert.h"
#include "fmt/format.h"
#include "formats/model.h"
#include "ops/ggml_quants.h"
#include "ops/gguf_plan.h"

namespace sp {

absl::StatusOr<VerifyReport> verify_gguf(const std::string& path, const VerifyOptions& options) {
  VerifyReport r;
  r.dir = path;
  auto opened = GgufModel::open(path);
  if (!opened.ok()) {
    if (absl::IsNotFound(opened.status())) return opened.status();
    r.problems.push_back(std::string(opened.status().message()));
    return r;
  }
  const GgufModel& m = **opened;
  r.architecture = m.desc().config.model_type;
  r.gguf_type = m.file_type_name();
  const bool weighted = m.file().strings.count("quantize.imatrix.file") > 0;
  std::optional<Model> original;
  if (options.against) {
    r.against = *options.against;
    SP_ASSIGN_OR_RETURN(original, open_model(*options.against));
    if (!weighted) {
      r.reference = "round-to-nearest in each tensor's type";
      r.exact = options.exact;
      if (options.exact) r.exact_reason = "--exact";
    } else if (options.exact) {
      r.problems.push_back(fmt::format(
          "--exact: {} was quantized with the importance matrix {}; its blocks cannot be compared without it", path,
          m.file().strings.at("quantize.imatrix.file")));
    }
  }
  for (const ModelTensor& t : m.desc().tensors) {
    TensorVerdict v;
    v.name = t.name;
    v.shape = t.stored.shape;
    const GgmlType type = static_cast<GgmlType>(m.entry(t.name).type);
    v.kind = std::string(ggml_traits(type).name);
    v.quantized = ggml_traits(type).block > 1;
    v.dtype = DType::kF32;
    const std::vector<float> y = m.decode(t.name);
    size_t bad = 0;
    for (float f : y) bad += !std::isfinite(f);
    if (bad) v.problem = fmt::format("{} values decode to NaN or infinity", bad);
    if (original && v.problem.empty()) {
      const ModelTensor* o = original->desc.find(t.name);
      if (!o || o->stored.shape != t.stored.shape) {
        v.problem = fmt::format("the original {} has no tensor of this name and shape", *options.against);
      } else {
        const TensorRef* ref = original->files.find(t.name);
        std::vector<float> x = to_float32(ref->view().bytes, o->stored.dtype);
        ref->release();
        compare_with_original(v, y, x);
        if (!weighted && v.quantized) {  // the bytes round-to-nearest writes (ops/gguf_plan), block by block
          GgufTensorPlan plan;
          plan.type = type;
          plan.ne = m.entry(t.name).ne;
          plan.permute_heads = qk_permute_heads(original->desc.config, t.role).value_or(0);
          const auto want = gguf_tensor_bytes(plan, std::move(x), o->stored.shape, 1);
          const auto have = m.bytes(t.name);
          const auto& tr = ggml_traits(type);
          uint64_t differ = 0;
          for (size_t b = 0; b < want.size(); b += static_cast<size_t>(tr.block_bytes))
            differ += std::memcmp(want.data() + b, have.data() + b, static_cast<size_t>(tr.block_bytes)) != 0;
          v.codes_differ = differ;
          v.codes_total = want.size() / static_cast<uint64_t>(tr.block_bytes);
          if (options.exact && differ)
            v.problem = fmt::format("{} of {} {} blocks differ from round-to-nearest of the original", differ,
                                    v.codes_total, tr.name);
        }
      }
    }
    if (!v.problem.empty()) r.problems.push_back(fmt::format("{}: {}", t.name, v.problem));
    r.tensors.push_back(std::move(v));
  }
  return r;
}

}  // namespace sp
