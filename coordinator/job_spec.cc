#include "coordinator/job_spec.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <regex>
#include <set>

#include "fmt/format.h"
#include "common/byte_size.h"
#include "common/digest.h"
#include "coordinator/yaml_keys.h"
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
      check_keys(root, "", {"name", "model", "output", "overwrite", "prune", "quantize", "calibrate"}, label));
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

  // Defaults (the common bitsandbytes setting), then whatever the file says.
  auto* prune = spec.mutable_prune();
  prune->set_method("none");
  prune->set_sparsity(0.3);
  prune->set_scope("row");
  if (const YAML::Node p = root["prune"]) {
    SP_RETURN_IF_ERROR(check_keys(p, "prune", {"method", "sparsity", "scope"}, label));
    SP_RETURN_IF_ERROR(read_field(p, "prune", "method", prune->method(), [&](auto v) { prune->set_method(v); }, label));
    SP_RETURN_IF_ERROR(
        read_field(p, "prune", "sparsity", prune->sparsity(), [&](auto v) { prune->set_sparsity(v); }, label));
    SP_RETURN_IF_ERROR(read_field(p, "prune", "scope", prune->scope(), [&](auto v) { prune->set_scope(v); }, label));
    if (prune->scope() == "2:4" && !p["sparsity"]) prune->set_sparsity(0.5);  // what 2:4 is
  }
  auto* q = spec.mutable_quantize();
  q->set_format("nf4");
  q->set_blocksize(64);
  q->set_double_quant(true);
  q->set_compute_dtype("bfloat16");
  q->set_method("rtn");
  // act-order is free with static NF4 scales (no g_idx); it cannot serve 2:4 groups.
  q->set_act_order(prune->scope() != "2:4");
  q->set_damp(0.01);
  q->set_scale_search(0.1);
  q->set_gptq_block_size(128);
  if (const YAML::Node n = root["quantize"]) {
    SP_RETURN_IF_ERROR(check_keys(n, "quantize",
                                  {"format", "method", "blocksize", "double_quant", "compute_dtype", "act_order",
                                   "damp", "scale_search", "gptq_block_size"},
                                  label));
    auto field = [&](const char* key, auto current, auto set) { return read_field(n, "quantize", key, current, set, label); };
    SP_RETURN_IF_ERROR(field("format", q->format(), [&](auto v) { q->set_format(v); }));
    SP_RETURN_IF_ERROR(field("method", q->method(), [&](auto v) { q->set_method(v); }));
    SP_RETURN_IF_ERROR(field("blocksize", q->blocksize(), [&](auto v) { q->set_blocksize(v); }));
    SP_RETURN_IF_ERROR(field("double_quant", q->double_quant(), [&](auto v) { q->set_double_quant(v); }));
    SP_RETURN_IF_ERROR(field("compute_dtype", q->compute_dtype(), [&](auto v) { q->set_compute_dtype(v); }));
    SP_RETURN_IF_ERROR(field("act_order", q->act_order(), [&](auto v) { q->set_act_order(v); }));
    SP_RETURN_IF_ERROR(field("damp", q->damp(), [&](auto v) { q->set_damp(v); }));
    SP_RETURN_IF_ERROR(field("scale_search", q->scale_search(), [&](auto v) { q->set_scale_search(v); }));
    SP_RETURN_IF_ERROR(field("gptq_block_size", q->gptq_block_size(), [&](auto v) { q->set_gptq_block_size(v); }));
  }
  auto* c = spec.mutable_calibrate();
  c->set_samples(128);
  c->set_mode("sequential");
  c->set_stage_memory(10ull << 30);
  if (const YAML::Node n = root["calibrate"]) {
    SP_RETURN_IF_ERROR(check_keys(n, "calibrate",
                                  {"ids", "samples", "seq_len", "mode", "true_sequential", "stage_memory"}, label));
    auto field = [&](const char* key, auto current, auto set) {
      return read_field(n, "calibrate", key, current, set, label);
    };
    SP_RETURN_IF_ERROR(field("ids", c->ids(), [&](auto v) { c->set_ids(v); }));
    SP_RETURN_IF_ERROR(field("samples", c->samples(), [&](auto v) { c->set_samples(v); }));
    SP_RETURN_IF_ERROR(field("seq_len", c->seq_len(), [&](auto v) { c->set_seq_len(v); }));
    SP_RETURN_IF_ERROR(field("mode", c->mode(), [&](auto v) { c->set_mode(v); }));
    SP_RETURN_IF_ERROR(field("true_sequential", c->true_sequential(), [&](auto v) { c->set_true_sequential(v); }));
    std::string stage_memory = "10GiB";
    SP_RETURN_IF_ERROR(read_scalar(n, "stage_memory", "calibrate.stage_memory", &stage_memory, label));
    auto sm = parse_byte_size(stage_memory);
    if (!sm.ok()) return bad(label, fmt::format("'calibrate.stage_memory': {}", std::string(sm.status().message())));
    c->set_stage_memory(*sm);
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
  if (is_eval_job(spec)) {
    if (!std::regex_match(spec.name(), kName))
      return absl::InvalidArgumentError(fmt::format("'name' {} must be 1-64 letters, digits, '.', '_' or '-'", spec.name()));
    if (!spec.output().empty()) return absl::InvalidArgumentError("an evaluation job writes nothing: no 'output'");
    if (spec.eval().samples() < 0) return absl::InvalidArgumentError("evaluation samples must be 0 (all) or more");
    if (spec.eval().seq_len() < 0 || spec.eval().seq_len() == 1)
      return absl::InvalidArgumentError("evaluation seq_len must be 2 or more (0: the file's line length)");
    return absl::OkStatus();
  }
  if (spec.output().empty()) return absl::InvalidArgumentError("'output' is required (a new folder)");
  if (!std::regex_match(spec.name(), kName))
    return absl::InvalidArgumentError(fmt::format(
        "'name' {} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", spec.name()));
  const auto& p = spec.prune();
  if (p.method() != "none" && p.method() != "magnitude" && p.method() != "wanda" && p.method() != "sparsegpt")
    return absl::InvalidArgumentError(
        fmt::format("'prune.method' is '{}'; expected none, magnitude, wanda or sparsegpt", p.method()));
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
  if (q.method() != "rtn" && q.method() != "gptq")
    return absl::InvalidArgumentError(fmt::format("'quantize.method' is '{}'; expected rtn or gptq", q.method()));
  if (q.method() == "gptq" && q.format() != "nf4")
    return absl::InvalidArgumentError("'quantize.method' gptq quantizes to NF4: it needs quantize.format nf4");
  if (q.method() == "gptq" || p.method() == "sparsegpt") {
    if (!(q.damp() > 0 && q.damp() < 1))
      return absl::InvalidArgumentError(fmt::format("'quantize.damp' is {}; expected a number in (0, 1)", q.damp()));
    if (!(q.scale_search() >= 0 && q.scale_search() <= 0.5))
      return absl::InvalidArgumentError(
          fmt::format("'quantize.scale_search' is {}; expected a number in [0, 0.5]", q.scale_search()));
    if (q.gptq_block_size() < 1 || q.gptq_block_size() > 4096)
      return absl::InvalidArgumentError(
          fmt::format("'quantize.gptq_block_size' is {}; expected 1 to 4096", q.gptq_block_size()));
    if (q.act_order() && p.method() != "none" && p.scope() == "2:4")
      return absl::InvalidArgumentError(
          "'quantize.act_order' cannot be combined with 2:4 pruning (its groups of 4 are in column order)");
  }
  // The rules the ops enforce on their settings (2:4 is exactly half, GPTQ's ranges...).
  SP_RETURN_IF_ERROR(annotate(validate(compress_settings(spec)), "the job's settings"));
  if (spec_needs_calibration(spec)) {
    const auto& c = spec.calibrate();
    if (c.ids().empty())
      return absl::InvalidArgumentError(fmt::format(
          "{} needs calibration text: set 'calibrate.ids' to a token-id file (one sequence per line)",
          describe_spec(spec)));
    if (c.samples() < 1 || c.samples() > 1'000'000)
      return absl::InvalidArgumentError(fmt::format("'calibrate.samples' is {}; expected 1 or more", c.samples()));
    if (c.seq_len() < 0 || c.seq_len() == 1 || c.seq_len() > 1'000'000)
      return absl::InvalidArgumentError(
          fmt::format("'calibrate.seq_len' is {}; expected 2 or more (0: the file's line length)", c.seq_len()));
    if (c.mode() != "sequential" && c.mode() != "pipelined")
      return absl::InvalidArgumentError(
          fmt::format("'calibrate.mode' is '{}'; expected sequential or pipelined", c.mode()));
    if (c.stage_memory() < (64ull << 20))
      return absl::InvalidArgumentError("'calibrate.stage_memory' must be at least 64MiB");
  }
  return absl::OkStatus();
}

bool spec_needs_calibration(const JobSpec& spec) { return needs_calibration(compress_settings(spec)); }

CompressSettings compress_settings(const JobSpec& spec) {
  CompressSettings s;
  const std::string& pm = spec.prune().method();
  if (pm == "magnitude" || pm == "wanda" || pm == "sparsegpt") {
    const auto scope = prune_scope_from_name(spec.prune().scope());
    s.prune = PruneSettings{scope.value_or(PruneScope::kRow), spec.prune().sparsity(),
                            pm == "wanda"       ? PruneMethod::kWanda
                            : pm == "sparsegpt" ? PruneMethod::kSparseGpt
                                                : PruneMethod::kMagnitude};
  }
  s.quant_method = spec.quantize().method() == "gptq" ? QuantMethod::kGptq : QuantMethod::kRtn;
  s.gptq.act_order = spec.quantize().act_order();
  s.gptq.damp = spec.quantize().damp() > 0 ? spec.quantize().damp() : 0.01;
  s.gptq.scale_search = spec.quantize().scale_search();
  s.gptq.block_size = spec.quantize().gptq_block_size() > 0 ? spec.quantize().gptq_block_size() : 128;
  s.gptq.true_sequential = spec.calibrate().true_sequential();
  if (spec.quantize().format() == "nf4") {
    s.quantize = Nf4Settings{spec.quantize().blocksize(), spec.quantize().double_quant(),
                             dtype_from_torch_name(spec.quantize().compute_dtype()).value_or(DType::kBF16)};
  } else {
    s.quantize.reset();
  }
  return s;
}

std::string describe_spec(const JobSpec& spec) { return describe(compress_settings(spec)); }

std::string spec_digest(const JobSpec& spec) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream out(&bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    spec.SerializeToCodedStream(&coded);
  }
  return digest_hex({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

namespace {

std::string field_text(const google::protobuf::Message& m, const google::protobuf::FieldDescriptor* f) {
  const auto* r = m.GetReflection();
  using F = google::protobuf::FieldDescriptor;
  switch (f->cpp_type()) {
    case F::CPPTYPE_STRING: return r->GetString(m, f).empty() ? "(none)" : r->GetString(m, f);
    case F::CPPTYPE_BOOL: return r->GetBool(m, f) ? "true" : "false";
    case F::CPPTYPE_INT32: return std::to_string(r->GetInt32(m, f));
    case F::CPPTYPE_INT64: return std::to_string(r->GetInt64(m, f));
    case F::CPPTYPE_UINT32: return std::to_string(r->GetUInt32(m, f));
    case F::CPPTYPE_UINT64: return std::to_string(r->GetUInt64(m, f));
    case F::CPPTYPE_DOUBLE: return fmt::format("{:g}", r->GetDouble(m, f));
    case F::CPPTYPE_FLOAT: return fmt::format("{:g}", r->GetFloat(m, f));
    case F::CPPTYPE_ENUM: return r->GetEnum(m, f)->name();
    default: return "?";
  }
}

void differences(const google::protobuf::Message& a, const google::protobuf::Message& b, const std::string& prefix,
                 std::vector<std::string>& out) {
  const auto* d = a.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    const std::string name = prefix + f->name();
    if (f->is_repeated()) continue;  // a JobSpec has none
    if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
      differences(a.GetReflection()->GetMessage(a, f), b.GetReflection()->GetMessage(b, f), name + ".", out);
      continue;
    }
    const std::string x = field_text(a, f), y = field_text(b, f);
    if (x != y) out.push_back(fmt::format("{}: {} -> {}", name, x, y));
  }
}

}  // namespace

std::vector<std::string> spec_differences(const JobSpec& before, const JobSpec& now) {
  std::vector<std::string> out;
  differences(before, now, "", out);
  return out;
}

}  // namespace sp
