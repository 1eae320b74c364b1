#include "jobs/job_settings.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <cmath>
#include <regex>

#include "common/digest.h"
#include "fmt/format.h"

namespace sp {

using shardpress::v1::JobSpec;

namespace {

absl::Status bad(const std::string& msg) { return absl::InvalidArgumentError(msg); }

// The spec's words that mean "not this step".
constexpr std::string_view kNone = "none";

// Converts without checking what validate() checks; names must be known.
absl::StatusOr<JobSettings> convert(const JobSpec& spec) {
  JobSettings out;
  if (is_eval_job(spec)) {
    out.kind = JobKind::kEvaluate;
    out.eval = EvalSettings{spec.eval().ids(), spec.eval().choices(), spec.eval().samples(), spec.eval().seq_len()};
    return out;
  }
  CompressSettings& s = out.compress;
  const auto& p = spec.prune();
  if (p.method() != kNone) {
    const auto method = value_of(kPruneMethodNames, p.method());
    if (!method)
      return bad(fmt::format("'prune.method' is '{}'; expected none, {}", p.method(), names_of(kPruneMethodNames)));
    const auto scope = prune_scope_from_name(p.scope());
    if (!scope) return bad(fmt::format("'prune.scope' is '{}'; expected {}", p.scope(), names_of(kPruneScopeNames)));
    s.prune = PruneSettings{*scope, p.sparsity(), *method};
  } else if (!prune_scope_from_name(p.scope())) {
    return bad(fmt::format("'prune.scope' is '{}'; expected {}", p.scope(), names_of(kPruneScopeNames)));
  }
  const auto& q = spec.quantize();
  const auto method = value_of(kQuantMethodNames, q.method());
  if (!method) return bad(fmt::format("'quantize.method' is '{}'; expected {}", q.method(), names_of(kQuantMethodNames)));
  s.quant_method = *method;
  if (const auto bnb4 = value_of(kBnbTypeNames, q.format())) {  // nf4, fp4: a bitsandbytes 4-bit folder
    const auto compute = dtype_from_torch_name(q.compute_dtype());
    if (!compute)
      return bad(fmt::format("'quantize.compute_dtype' is '{}'; expected bfloat16, float16 or float32",
                             q.compute_dtype()));
    s.quantize = Nf4Settings{q.blocksize(), q.double_quant(), *compute, *bnb4};
  } else if (q.format() == kNone) {
    s.quantize.reset();
  } else if (q.format() == "gguf") {
    s.quantize.reset();
    const auto type = gguf_ftype_from_name(q.type());
    if (!type)
      return bad(fmt::format("'quantize.type' is '{}'; format gguf writes one of {}", q.type(), gguf_ftype_names()));
    s.gguf = *type;
    out.gguf_imatrix = q.imatrix();
  } else {
    return bad(fmt::format("'quantize.format' is '{}'; expected nf4, fp4, int8, gguf or none", q.format()));
  }
  if (q.format() != "gguf" && !q.type().empty())
    return bad(fmt::format("'quantize.type' is for format gguf (the format is '{}')", q.format()));
  if (q.format() != "gguf" && !q.imatrix().empty())
    return bad(fmt::format("'quantize.imatrix' is for format gguf (the format is '{}')", q.format()));
  s.gptq.act_order = q.act_order();
  s.gptq.damp = q.damp();
  s.gptq.scale_search = q.scale_search();
  const auto scales = value_of(kScaleChoiceNames, q.scales());
  if (!scales) return bad(fmt::format("'quantize.scales' is '{}'; expected {}", q.scales(), names_of(kScaleChoiceNames)));
  s.gptq.scales = *scales;
  s.gptq.block_size = q.gptq_block_size();
  s.gptq.true_sequential = spec.calibrate().true_sequential();
  if (s.gguf && !q.imatrix().empty() && s.quant_method != QuantMethod::kRtn)
    return bad("'quantize.imatrix' weighs round-to-nearest (method rtn); GPTQ weighs the columns by its own Hessian");
  if (s.gguf && s.quant_method == QuantMethod::kRtn && !spec.calibrate().ids().empty()) {
    // round to nearest weighted by llama.cpp's importance values from this text
    if (!out.gguf_imatrix.empty())
      return bad("format gguf takes its importance values from 'quantize.imatrix' or from 'calibrate.ids', not both");
    s.gguf_importance = true;
  }
  if (needs_calibration(s)) {
    const auto& c = spec.calibrate();
    if (c.mode() != "sequential" && c.mode() != "pipelined")
      return bad(fmt::format("'calibrate.mode' is '{}'; expected sequential or pipelined", c.mode()));
    const auto activations = c.activations().empty() ? std::optional<DType>(DType::kF32)
                                                      : dtype_from_torch_name(c.activations());
    if (!activations || (*activations != DType::kF32 && *activations != DType::kBF16))
      return bad(fmt::format("'calibrate.activations' is '{}'; expected float32 or bfloat16", c.activations()));
    out.calibration = CalibrationSettings{c.ids(),          c.samples(),    c.seq_len(), c.mode() == "pipelined",
                                          c.stage_memory(), *activations,  std::max(1, c.checkpoint_every())};
  }
  return out;
}

// The `evaluate:` section of a compression job.
absl::Status evaluate_settings(const shardpress::v1::EvaluateSpec& e, JobSettings& s) {
  if (e.ids().empty() && e.choices().empty())
    return bad("an 'evaluate' section needs 'evaluate.ids' (a token-id file, one sequence per line: perplexity) "
               "and/or 'evaluate.choices' (multiple-choice items: accuracy)");
  if (e.ids().empty() && e.has_max_ppl_increase())
    return bad("'evaluate.max_ppl_increase' gates perplexity: it needs 'evaluate.ids'");
  if (e.samples() < 0) return bad(fmt::format("'evaluate.samples' is {}; expected 0 (all) or more", e.samples()));
  if (e.seq_len() < 0 || e.seq_len() == 1)
    return bad(fmt::format("'evaluate.seq_len' is {}; expected 2 or more (0: the file's line length)", e.seq_len()));
  if (e.has_max_ppl_increase()) {
    if (!std::isfinite(e.max_ppl_increase()) || e.max_ppl_increase() < 0)
      return bad(fmt::format("'evaluate.max_ppl_increase' is {}; expected 0 or more (perplexity points over the "
                             "original model's)",
                             e.max_ppl_increase()));
    s.max_ppl_increase = e.max_ppl_increase();
  }
  if (e.has_max_acc_decrease()) {
    if (e.choices().empty()) return bad("'evaluate.max_acc_decrease' gates accuracy: it needs 'evaluate.choices'");
    if (!std::isfinite(e.max_acc_decrease()) || e.max_acc_decrease() < 0 || e.max_acc_decrease() > 1)
      return bad(fmt::format("'evaluate.max_acc_decrease' is {}; expected 0 to 1 (accuracy points under the original "
                             "model's)",
                             e.max_acc_decrease()));
    s.max_acc_decrease = e.max_acc_decrease();
  }
  s.evaluate = EvalSettings{e.ids(), e.choices(), e.samples(), e.seq_len()};
  return absl::OkStatus();
}

}  // namespace

JobSpec default_job_spec() {
  JobSpec spec;
  auto* p = spec.mutable_prune();
  p->set_method(std::string(kNone));
  p->set_sparsity(0.3);
  p->set_scope("row");
  auto* q = spec.mutable_quantize();
  q->set_format("nf4");
  q->set_blocksize(64);
  q->set_double_quant(true);
  q->set_compute_dtype("bfloat16");
  q->set_method("rtn");
  q->set_act_order(true);
  q->set_damp(0.01);
  q->set_scale_search(0.1);
  q->set_scales("search");
  q->set_gptq_block_size(128);
  auto* c = spec.mutable_calibrate();
  c->set_samples(128);
  c->set_mode("sequential");
  c->set_stage_memory(10ull << 30);
  return spec;
}

void apply_dependent_defaults(JobSpec& spec, bool sparsity_given, bool act_order_given) {
  if (spec.calibrate().activations() == "float32") spec.mutable_calibrate()->clear_activations();
  if (spec.calibrate().checkpoint_every() == 1) spec.mutable_calibrate()->clear_checkpoint_every();
  const bool two_four = spec.prune().scope() == "2:4";
  if (two_four && !sparsity_given) spec.mutable_prune()->set_sparsity(0.5);
  if (!act_order_given) spec.mutable_quantize()->set_act_order(!two_four);
}

absl::StatusOr<JobSettings> job_settings(const JobSpec& spec) {
  static const std::regex kName("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");
  if (spec.model().empty()) return bad("'model' is required (a Hugging Face model folder)");
  if (is_eval_job(spec)) {
    if (!std::regex_match(spec.name(), kName))
      return bad(fmt::format("'name' {} must be 1-64 letters, digits, '.', '_' or '-'", spec.name()));
    if (!spec.output().empty()) return bad("an evaluation job writes nothing: no 'output'");
    if (spec.eval().samples() < 0) return bad("evaluation samples must be 0 (all) or more");
    if (spec.eval().seq_len() < 0 || spec.eval().seq_len() == 1)
      return bad("evaluation seq_len must be 2 or more (0: the file's line length)");
    if (spec.has_evaluate()) return bad("an evaluation job cannot have an 'evaluate' section");
    if (!spec.eval().ids().empty() && !spec.eval().choices().empty())
      return bad("an evaluation scores token ids (perplexity) or choices (accuracy), not both");
    return convert(spec);
  }
  if (spec.output().empty()) return bad("'output' is required (a new folder)");
  if (!std::regex_match(spec.name(), kName))
    return bad(fmt::format("'name' {} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
                           spec.name()));
  SP_ASSIGN_OR_RETURN(JobSettings s, convert(spec));
  SP_RETURN_IF_ERROR(validate(s.compress));
  if (s.calibration) {
    const CalibrationSettings& c = *s.calibration;
    if (c.ids.empty())
      return bad(fmt::format("{} needs calibration text: set 'calibrate.ids' to a token-id file (one sequence per line)",
                             describe(s.compress)));
    if (c.samples < 1 || c.samples > 1'000'000)
      return bad(fmt::format("'calibrate.samples' is {}; expected 1 or more", c.samples));
    if (c.seq_len < 0 || c.seq_len == 1 || c.seq_len > 1'000'000)
      return bad(fmt::format("'calibrate.seq_len' is {}; expected 2 or more (0: the file's line length)", c.seq_len));
    if (c.stage_memory < (64ull << 20)) return bad("'calibrate.stage_memory' must be at least 64MiB");
    const int every = spec.calibrate().checkpoint_every();
    if (every < 0 || every > 100'000)
      return bad(fmt::format("'calibrate.checkpoint_every' is {}; expected 1 or more layers", every));
    if (c.pipelined && every > 1)
      return bad(fmt::format("'calibrate.checkpoint_every' is {}, but mode is pipelined: its boundaries feed tasks on "
                             "other workers, so each is uploaded; use mode: sequential or leave checkpoint_every at 1",
                             every));
  }
  if (spec.has_evaluate()) SP_RETURN_IF_ERROR(evaluate_settings(spec.evaluate(), s));
  return s;
}

CompressSettings compress_settings(const JobSpec& spec) {
  auto s = convert(spec);
  return s.ok() ? s->compress : CompressSettings{};
}

bool spec_needs_calibration(const JobSpec& spec) { return needs_calibration(compress_settings(spec)); }

std::string describe_spec(const JobSpec& spec) {
  const std::string d = describe(compress_settings(spec));
  return spec_needs_calibration(spec) && spec.calibrate().activations() == "bfloat16" ? d + ", bfloat16 activations" : d;
}

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
