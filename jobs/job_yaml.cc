#include "jobs/job_yaml.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <set>

#include "fmt/format.h"
#include "common/byte_size.h"
#include "common/yaml_keys.h"

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

// section.key, when present, replaces the field's current value (its default) via `set`.
template <typename T, typename Set>
absl::Status read_field(const YAML::Node& section_node, const std::string& section, const char* key, T current,
                        Set set, std::string_view label) {
  SP_RETURN_IF_ERROR(read_scalar(section_node, key, section + "." + key, &current, label));
  set(current);
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
  SP_RETURN_IF_ERROR(check_unique_keys(root, label));
  SP_RETURN_IF_ERROR(
      check_keys(root, "", {"name", "model", "output", "overwrite", "prune", "quantize", "calibrate", "evaluate"}, label));
  JobSpec spec = default_job_spec();  // then whatever the file says
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
  bool sparsity_given = false, act_order_given = false;
  if (const YAML::Node p = root["prune"]) {
    SP_RETURN_IF_ERROR(check_keys(p, "prune", {"method", "sparsity", "scope"}, label));
    SP_RETURN_IF_ERROR(read_field(p, "prune", "method", prune->method(), [&](auto v) { prune->set_method(v); }, label));
    SP_RETURN_IF_ERROR(
        read_field(p, "prune", "sparsity", prune->sparsity(), [&](auto v) { prune->set_sparsity(v); }, label));
    SP_RETURN_IF_ERROR(read_field(p, "prune", "scope", prune->scope(), [&](auto v) { prune->set_scope(v); }, label));
    sparsity_given = static_cast<bool>(p["sparsity"]);
  }
  auto* q = spec.mutable_quantize();
  if (const YAML::Node n = root["quantize"]) {
    SP_RETURN_IF_ERROR(check_keys(n, "quantize",
                                  {"format", "method", "blocksize", "double_quant", "compute_dtype", "act_order",
                                   "damp", "scale_search", "scales", "gptq_block_size", "type", "imatrix"},
                                  label));
    auto field = [&](const char* key, auto current, auto set) { return read_field(n, "quantize", key, current, set, label); };
    SP_RETURN_IF_ERROR(field("format", q->format(), [&](auto v) { q->set_format(v); }));
    SP_RETURN_IF_ERROR(field("type", q->type(), [&](auto v) { q->set_type(v); }));
    SP_RETURN_IF_ERROR(field("imatrix", q->imatrix(), [&](auto v) { q->set_imatrix(v); }));
    SP_RETURN_IF_ERROR(field("method", q->method(), [&](auto v) { q->set_method(v); }));
    SP_RETURN_IF_ERROR(field("blocksize", q->blocksize(), [&](auto v) { q->set_blocksize(v); }));
    SP_RETURN_IF_ERROR(field("double_quant", q->double_quant(), [&](auto v) { q->set_double_quant(v); }));
    SP_RETURN_IF_ERROR(field("compute_dtype", q->compute_dtype(), [&](auto v) { q->set_compute_dtype(v); }));
    SP_RETURN_IF_ERROR(field("act_order", q->act_order(), [&](auto v) { q->set_act_order(v); }));
    SP_RETURN_IF_ERROR(field("damp", q->damp(), [&](auto v) { q->set_damp(v); }));
    SP_RETURN_IF_ERROR(field("scale_search", q->scale_search(), [&](auto v) { q->set_scale_search(v); }));
    SP_RETURN_IF_ERROR(field("scales", q->scales(), [&](auto v) { q->set_scales(v); }));
    SP_RETURN_IF_ERROR(field("gptq_block_size", q->gptq_block_size(), [&](auto v) { q->set_gptq_block_size(v); }));
    act_order_given = static_cast<bool>(n["act_order"]);
  }
  auto* c = spec.mutable_calibrate();
  if (const YAML::Node n = root["calibrate"]) {
    SP_RETURN_IF_ERROR(check_keys(n, "calibrate",
                                  {"ids", "samples", "seq_len", "mode", "true_sequential", "stage_memory", "activations",
                                   "checkpoint_every"},
                                  label));
    auto field = [&](const char* key, auto current, auto set) {
      return read_field(n, "calibrate", key, current, set, label);
    };
    SP_RETURN_IF_ERROR(field("ids", c->ids(), [&](auto v) { c->set_ids(v); }));
    SP_RETURN_IF_ERROR(field("samples", c->samples(), [&](auto v) { c->set_samples(v); }));
    SP_RETURN_IF_ERROR(field("seq_len", c->seq_len(), [&](auto v) { c->set_seq_len(v); }));
    SP_RETURN_IF_ERROR(field("mode", c->mode(), [&](auto v) { c->set_mode(v); }));
    SP_RETURN_IF_ERROR(field("true_sequential", c->true_sequential(), [&](auto v) { c->set_true_sequential(v); }));
    SP_RETURN_IF_ERROR(field("activations", c->activations(), [&](auto v) { c->set_activations(v); }));
    SP_RETURN_IF_ERROR(field("checkpoint_every", c->checkpoint_every(), [&](auto v) { c->set_checkpoint_every(v); }));
    std::string stage_memory = "10GiB";
    SP_RETURN_IF_ERROR(read_scalar(n, "stage_memory", "calibrate.stage_memory", &stage_memory, label));
    auto sm = parse_byte_size(stage_memory);
    if (!sm.ok()) return bad(label, fmt::format("'calibrate.stage_memory': {}", std::string(sm.status().message())));
    c->set_stage_memory(*sm);
  }
  if (const YAML::Node n = root["evaluate"]) {
    SP_RETURN_IF_ERROR(check_keys(n, "evaluate", {"ids", "choices", "samples", "seq_len", "max_ppl_increase", "max_acc_decrease"}, label));
    auto* e = spec.mutable_evaluate();
    auto field = [&](const char* key, auto current, auto set) {
      return read_field(n, "evaluate", key, current, set, label);
    };
    SP_RETURN_IF_ERROR(field("ids", e->ids(), [&](auto v) { e->set_ids(v); }));
    SP_RETURN_IF_ERROR(field("choices", e->choices(), [&](auto v) { e->set_choices(v); }));
    SP_RETURN_IF_ERROR(field("samples", e->samples(), [&](auto v) { e->set_samples(v); }));
    SP_RETURN_IF_ERROR(field("seq_len", e->seq_len(), [&](auto v) { e->set_seq_len(v); }));
    if (n["max_ppl_increase"]) {
      SP_RETURN_IF_ERROR(field("max_ppl_increase", 0.0, [&](auto v) { e->set_max_ppl_increase(v); }));
    }
    if (n["max_acc_decrease"]) {
      SP_RETURN_IF_ERROR(field("max_acc_decrease", 0.0, [&](auto v) { e->set_max_acc_decrease(v); }));
    }
  }
  apply_dependent_defaults(spec, sparsity_given, act_order_given);
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

}  // namespace sp
