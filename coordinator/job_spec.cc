#include "coordinator/job_spec.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <regex>
#include <set>

#include "fmt/format.h"
#include "ops/nf4_codebook.h"

namespace sp {
namespace {

using shardpress::v1::JobSpec;

absl::Status bad(std::string_view label, const std::string& msg) {
  return absl::InvalidArgumentError(fmt::format("{}: {}", label, msg));
}

absl::Status check_keys(const YAML::Node& node, const std::string& where, const std::set<std::string>& allowed,
                        std::string_view label) {
  if (!node.IsMap()) return bad(label, fmt::format("'{}' must be a mapping", where));
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) return bad(label, fmt::format("'{}' has a key that is not a plain name", where));
    const std::string key = kv.first.Scalar();
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return bad(label, fmt::format("unknown key '{}{}' (allowed: {})", where.empty() ? "" : where + ".", key, list));
    }
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status read_scalar(const YAML::Node& node, const char* key, const std::string& path, T* out,
                         std::string_view label) {
  if (!node[key]) return absl::OkStatus();
  if (!node[key].IsScalar()) return bad(label, fmt::format("'{}' must be a single value", path));
  try {
    *out = node[key].as<T>();
  } catch (const YAML::Exception&) {
    return bad(label, fmt::format("'{}' has a bad value '{}'", path, node[key].Scalar()));
  }
  return absl::OkStatus();
}

}  // namespace

static absl::StatusOr<JobSpec> parse_job_yaml_unguarded(std::string_view text, std::string_view label) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return bad(label, fmt::format("not valid YAML: {}", e.what()));
  }
  if (!root.IsMap()) return bad(label, "a job spec is a mapping with model, output, prune, quantize");
  SP_RETURN_IF_ERROR(check_keys(root, "", {"name", "model", "output", "overwrite", "prune", "quantize"}, label));
  JobSpec spec;
  std::string s;
  SP_RETURN_IF_ERROR(read_scalar(root, "name", "name", &s, label));
  spec.set_name(s);
  s.clear();
  SP_RETURN_IF_ERROR(read_scalar(root, "model", "model", &s, label));
  spec.set_model(s);
  s.clear();
  SP_RETURN_IF_ERROR(read_scalar(root, "output", "output", &s, label));
  spec.set_output(s);
  bool overwrite = false;
  SP_RETURN_IF_ERROR(read_scalar(root, "overwrite", "overwrite", &overwrite, label));
  spec.set_overwrite(overwrite);

  auto* prune = spec.mutable_prune();
  prune->set_method("none");
  prune->set_sparsity(0.3);
  prune->set_scope("row");
  if (root["prune"]) {
    const YAML::Node p = root["prune"];
    SP_RETURN_IF_ERROR(check_keys(p, "prune", {"method", "sparsity", "scope"}, label));
    std::string method = "none", scope = "row";
    double sparsity = 0.3;
    SP_RETURN_IF_ERROR(read_scalar(p, "method", "prune.method", &method, label));
    SP_RETURN_IF_ERROR(read_scalar(p, "sparsity", "prune.sparsity", &sparsity, label));
    SP_RETURN_IF_ERROR(read_scalar(p, "scope", "prune.scope", &scope, label));
    prune->set_method(method);
    prune->set_sparsity(sparsity);
    prune->set_scope(scope);
  }
  auto* q = spec.mutable_quantize();
  q->set_format("nf4");
  q->set_blocksize(64);
  q->set_double_quant(true);
  q->set_compute_dtype("bfloat16");
  if (root["quantize"]) {
    const YAML::Node n = root["quantize"];
    SP_RETURN_IF_ERROR(check_keys(n, "quantize", {"format", "blocksize", "double_quant", "compute_dtype"}, label));
    std::string format = "nf4", compute = "bfloat16";
    int blocksize = 64;
    bool dq = true;
    SP_RETURN_IF_ERROR(read_scalar(n, "format", "quantize.format", &format, label));
    SP_RETURN_IF_ERROR(read_scalar(n, "blocksize", "quantize.blocksize", &blocksize, label));
    SP_RETURN_IF_ERROR(read_scalar(n, "double_quant", "quantize.double_quant", &dq, label));
    SP_RETURN_IF_ERROR(read_scalar(n, "compute_dtype", "quantize.compute_dtype", &compute, label));
    q->set_format(format);
    q->set_blocksize(blocksize);
    q->set_double_quant(dq);
    q->set_compute_dtype(compute);
  }
  if (spec.name().empty() && !spec.output().empty())
    spec.set_name(std::filesystem::path(spec.output()).lexically_normal().filename().string());
  SP_RETURN_IF_ERROR(annotate(validate_job_spec(spec), label));
  return spec;
}

absl::StatusOr<JobSpec> parse_job_yaml(std::string_view text, std::string_view label) {
  try {
    return parse_job_yaml_unguarded(text, label);
  } catch (const YAML::Exception& e) {  // yaml-cpp throws on odd documents: a bad-input error
    return bad(label, fmt::format("not a valid job spec: {}", e.what()));
  }
}

absl::Status validate_job_spec(const JobSpec& spec) {
  static const std::regex kName("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");
  if (spec.model().empty()) return absl::InvalidArgumentError("'model' is required (a Hugging Face model folder)");
  if (spec.output().empty()) return absl::InvalidArgumentError("'output' is required (a new folder)");
  if (!std::regex_match(spec.name(), kName))
    return absl::InvalidArgumentError(fmt::format(
        "'name' {} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", spec.name()));
  const auto& p = spec.prune();
  if (p.method() != "none" && p.method() != "magnitude")
    return absl::InvalidArgumentError(fmt::format("'prune.method' is '{}'; expected none or magnitude", p.method()));
  if (p.scope() != "tensor" && p.scope() != "row" && p.scope() != "2:4")
    return absl::InvalidArgumentError(fmt::format("'prune.scope' is '{}'; expected tensor, row or 2:4", p.scope()));
  if (!(p.sparsity() >= 0.0 && p.sparsity() < 1.0))
    return absl::InvalidArgumentError(fmt::format("'prune.sparsity' is {}; expected a number in [0, 1)", p.sparsity()));
  const auto& q = spec.quantize();
  if (q.format() != "nf4" && q.format() != "none")
    return absl::InvalidArgumentError(fmt::format("'quantize.format' is '{}'; expected nf4 or none", q.format()));
  if (q.format() == "nf4" && !nf4_blocksize_ok(q.blocksize()))
    return absl::InvalidArgumentError(fmt::format(
        "'quantize.blocksize' is {}; expected 32, 64, 128, 256, 512, 1024, 2048 or 4096", q.blocksize()));
  if (q.compute_dtype() != "bfloat16" && q.compute_dtype() != "float16" && q.compute_dtype() != "float32")
    return absl::InvalidArgumentError(fmt::format(
        "'quantize.compute_dtype' is '{}'; expected bfloat16, float16 or float32", q.compute_dtype()));
  if (p.method() == "none" && q.format() == "none")
    return absl::InvalidArgumentError("nothing to do: prune.method is none and quantize.format is none");
  return absl::OkStatus();
}

CompressSettings compress_settings(const JobSpec& spec) {
  CompressSettings s;
  if (spec.prune().method() == "magnitude")
    s.prune = PruneSettings{*prune_scope_from_name(spec.prune().scope()), spec.prune().sparsity()};
  if (spec.quantize().format() == "nf4") {
    s.quantize = Nf4Settings{spec.quantize().blocksize(), spec.quantize().double_quant(),
                             *dtype_from_torch_name(spec.quantize().compute_dtype())};
  } else {
    s.quantize.reset();
  }
  return s;
}

std::string describe_spec(const JobSpec& spec) { return describe(compress_settings(spec)); }

}  // namespace sp
