#include "checkpoint/verify.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "checkpoint/assembler.h"
#include "checkpoint/compression_record.h"
#include "common/digest.h"
#include "common/file_util.h"
#include "common/float_convert.h"
#include "fmt/format.h"
#include "formats/bnb_format.h"
#include "formats/model_config.h"
#include "formats/model_files.h"
#include "formats/model_layout.h"
#include "ops/double_quant.h"
#include "ops/int8_rows.h"
#include "ops/finite_check.h"
#include "ops/compress_shard.h"
#include "ops/nf4.h"

namespace sp {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

// The side tensors of one quantized weight, as found in the files.
struct Nf4Entry {
  std::string weight;  // "<prefix>.weight"
  std::map<std::string, const TensorRef*> parts;  // suffix ("" for the packed weight) -> tensor
  std::optional<QuantState> state;                // set once the quant_state checks out
  bool int8 = false;  // an LLM.int8 weight: parts "" (I8 codes), "SCB", "weight_format"
};

// Checks one LLM.int8 weight (B.2); on success fills `verdict` and the row scales.
std::string check_int8(Nf4Entry& e, TensorVerdict& v, std::vector<float>* scb_out) {
  const TensorRef* w = e.parts.count("") ? e.parts.at("") : nullptr;
  const TensorRef* scb = e.parts.count("SCB") ? e.parts.at("SCB") : nullptr;
  const TensorRef* fmt_t = e.parts.count("weight_format") ? e.parts.at("weight_format") : nullptr;
  if (!w || !scb) return fmt::format("missing tensor '{}'", !w ? e.weight : int8_scb_name(e.weight));
  if (w->info->dtype != DType::kI8 || w->info->shape.size() != 2)
    return fmt::format("weight is {} {}, expected I8 [out, in]", dtype_name(w->info->dtype),
                       nlohmann::json(w->info->shape).dump());
  const int64_t rows = w->info->shape[0], cols = w->info->shape[1];
  if (scb->info->dtype != DType::kF32 || scb->info->shape != std::vector<int64_t>{rows})
    return fmt::format("SCB must be F32 [{}]", rows);
  if (fmt_t) {
    if (fmt_t->info->dtype != DType::kU8 || !fmt_t->info->shape.empty() || fmt_t->view().bytes[0] != 0)
      return "weight_format must be the 0-dim U8 0 (row-major)";
  }
  std::vector<float> scales = to_float32(scb->view().bytes, DType::kF32);
  for (size_t i = 0; i < scales.size(); ++i)
    if (!std::isfinite(scales[i]) || scales[i] < 0) return fmt::format("SCB[{}] = {} is not a finite non-negative number", i, scales[i]);
  for (int8_t c : std::span<const int8_t>(reinterpret_cast<const int8_t*>(w->view().bytes.data()), w->view().bytes.size()))
    if (c == -128) return "a code is -128 (LLM.int8 codes are -127..127)";
  QuantState qs;
  qs.rows = rows;
  qs.cols = cols;
  qs.dtype = DType::kBF16;
  qs.quant_type = BnbType::kInt8;
  e.state = qs;
  v.dtype = DType::kBF16;
  v.shape = {rows, cols};
  *scb_out = std::move(scales);
  return "";
}

// Checks one quantized weight; on success fills `verdict` and the decoded absmax.
std::string check_nf4(Nf4Entry& e, bool config_dq, BnbType config_type, TensorVerdict& v,
                      std::vector<float>* absmax_out) {
  if (e.int8 != (config_type == BnbType::kInt8))
    return e.int8 ? "an int8 weight, but config.json says load_in_4bit" : "a 4-bit weight, but config.json says load_in_8bit";
  if (e.int8) return check_int8(e, v, absmax_out);
  auto part = [&](const std::string& s) -> const TensorRef* {
    auto it = e.parts.find(s);
    return it == e.parts.end() ? nullptr : it->second;
  };
  const std::string blob = quant_state_suffix(config_type).substr(1);  // the config's type names the blob
  const TensorRef* js = part(blob);
  if (!js)
    return fmt::format("no '{}.{}' (bnb_4bit_quant_type is {} in config.json)", e.weight, blob, bnb_type_name(config_type));
  auto jb = js->view().bytes;
  if (js->info->dtype != DType::kU8 || js->info->shape.size() != 1) return "quant_state is not a 1-D U8 tensor";
  auto qs_or = parse_quant_state_json(std::string_view(reinterpret_cast<const char*>(jb.data()), jb.size()));
  if (!qs_or.ok()) return std::string(qs_or.status().message());
  const QuantState qs = *qs_or;
  e.state = qs;
  v.dtype = qs.dtype;
  v.shape = {qs.rows, qs.cols};
  if (!nf4_blocksize_ok(qs.blocksize)) return fmt::format("blocksize {} is not one bitsandbytes accepts", qs.blocksize);
  if (qs.quant_type != config_type)
    return fmt::format("quant_type is {} in its quant_state but {} in config.json", bnb_type_name(qs.quant_type),
                       bnb_type_name(config_type));
  if (qs.double_quant != config_dq)
    return fmt::format("double quantization is {} here but bnb_4bit_use_double_quant is {} in config.json",
                       qs.double_quant, config_dq);
  std::set<std::string> expected = {"", "absmax", "quant_map", blob};
  if (qs.double_quant) expected.insert({"nested_absmax", "nested_quant_map"});
  for (const auto& s : expected)
    if (!part(s)) return fmt::format("missing tensor '{}{}'", e.weight, s.empty() ? "" : "." + s);
  for (const auto& [s, _] : e.parts)
    if (!expected.count(s)) return fmt::format("unexpected tensor '{}.{}'", e.weight, s);

  const uint64_t n = static_cast<uint64_t>(qs.rows) * static_cast<uint64_t>(qs.cols);
  const uint64_t nb = (n + qs.blocksize - 1) / qs.blocksize;
  auto shape_is = [](const TensorRef* t, DType d, std::vector<int64_t> s) {
    return t->info->dtype == d && t->info->shape == s;
  };
  if (!shape_is(part(""), DType::kU8, {static_cast<int64_t>((n + 1) / 2), 1}))
    return fmt::format("packed weight is {} {}, expected U8 [{}, 1]", dtype_name(part("")->info->dtype),
                       nlohmann::json(part("")->info->shape).dump(), (n + 1) / 2);
  const TensorRef* qm = part("quant_map");
  if (!shape_is(qm, DType::kF32, {16}) ||
      std::memcmp(qm->view().bytes.data(), bnb4_code(qs.quant_type), kNf4Levels * sizeof(float)) != 0)
    return fmt::format("quant_map is not the {} code book", bnb_type_name(qs.quant_type));
  const TensorRef* am = part("absmax");
  std::vector<float> absmax(nb);
  if (qs.double_quant) {
    if (!shape_is(am, DType::kU8, {static_cast<int64_t>(nb)}))
      return fmt::format("absmax must be U8 [{}] with double quantization", nb);
    const TensorRef* na = part("nested_absmax");
    const TensorRef* nm = part("nested_quant_map");
    if (!shape_is(na, DType::kF32, {static_cast<int64_t>((nb + 255) / 256)}))
      return fmt::format("nested_absmax must be F32 [{}]", (nb + 255) / 256);
    if (!shape_is(nm, DType::kF32, {256})) return "nested_quant_map must be F32 [256]";
    const std::vector<float> map = to_float32(nm->view().bytes, DType::kF32);
    for (size_t i = 0; i < map.size(); ++i) {
      if (!std::isfinite(map[i]) || std::fabs(map[i]) > 1.0f || (i > 0 && !(map[i] > map[i - 1])))
        return fmt::format("nested_quant_map entry {} ({}) breaks the dynamic map (increasing, within [-1, 1])", i, map[i]);
    }
    const std::vector<float> nested = to_float32(na->view().bytes, DType::kF32);
    for (size_t i = 0; i < nested.size(); ++i)
      if (!std::isfinite(nested[i]) || nested[i] < 0)
        return fmt::format("nested_absmax[{}] = {} is not a finite non-negative number", i, nested[i]);
    double_dequantize(am->view().bytes, nested, qs.nested_offset, map.data(), absmax.data());
  } else {
    if (!shape_is(am, DType::kF32, {static_cast<int64_t>(nb)})) return fmt::format("absmax must be F32 [{}]", nb);
    absmax = to_float32(am->view().bytes, DType::kF32);
  }
  for (size_t i = 0; i < absmax.size(); ++i) {
    // Double quantization may decode a zero block's absmax slightly below zero; a
    // negative beyond that, or NaN/Inf, means corrupt bytes.
    if (!std::isfinite(absmax[i]) || absmax[i] < -1e-3f)
      return fmt::format("absmax of block {} decodes to {}", i, absmax[i]);
  }
  *absmax_out = std::move(absmax);
  return "";
}

// A checked quantized weight as bitsandbytes decodes it: code * (decoded) absmax, float32.
std::vector<float> dequantize_entry(const Nf4Entry& e, const std::vector<float>& absmax) {
  const QuantState& qs = *e.state;
  if (e.int8) {  // absmax holds the rows' SCB
    const TensorRef* w = e.parts.at("");
    const auto b = w->view().bytes;
    std::vector<float> out =
        int8_dequantize(std::span<const int8_t>(reinterpret_cast<const int8_t*>(b.data()), b.size()), absmax, qs.cols);
    w->release();
    return out;
  }
  const uint64_t n = static_cast<uint64_t>(qs.rows) * static_cast<uint64_t>(qs.cols);
  std::vector<float> out(n);
  const TensorRef* packed = e.parts.at("");
  bnb4_backend(qs.quant_type, nf4_best_backend())
      .dequantize(packed->view().bytes.data(), absmax.data(), n, static_cast<size_t>(qs.blocksize), out.data());
  packed->release();
  return out;
}

// Splits a checkpoint's tensors into quantized weights (found by their quant_state, with
// their side tensors) and plain tensors.
void group_tensors(const ModelFiles& files, std::map<std::string, Nf4Entry>& nf4,
                   std::map<std::string, const TensorRef*>& plain) {
  for (const auto& [name, ref] : files.tensors()) {
    if (name.ends_with(".SCB")) {  // LLM.int8: "<P>.SCB" beside "<P>.weight"
      const std::string w = name.substr(0, name.size() - 4) + ".weight";
      nf4[w].weight = w;
      nf4[w].int8 = true;
    }
    for (const auto& t : kBnbTypeNames) {
      if (!is_4bit(t.value)) continue;
      const std::string suffix = quant_state_suffix(t.value);
      if (name.ends_with(suffix)) {
        const std::string w = name.substr(0, name.size() - suffix.size());
        nf4[w].weight = w;
      }
    }
  }
  for (const auto& [name, ref] : files.tensors()) {
    bool claimed = false;
    const bool int8_side = name.ends_with(".SCB") || name.ends_with(".weight_format");
    if (int8_side) {
      const std::string w = name.substr(0, name.rfind('.')) + ".weight";
      if (auto it = nf4.find(w); it != nf4.end() && it->second.int8) {
        it->second.parts[name.ends_with(".SCB") ? "SCB" : "weight_format"] = &ref;
        claimed = true;
      }
    }
    if (!claimed && nf4.count(name)) {
      nf4[name].parts[""] = &ref;
      claimed = true;
    } else if (!claimed) {
      const size_t dot = name.rfind(".weight.");
      if (dot != std::string::npos) {
        const std::string w = name.substr(0, dot + 7);
        const std::string suffix = name.substr(dot + 8);
        if (nf4.count(w) && is_nf4_side_suffix(suffix)) {
          nf4[w].parts[suffix] = &ref;
          claimed = true;
        }
      }
    }
    if (!claimed) plain[name] = &ref;
  }
}

struct CodeDiff {
  uint64_t count = 0, total = 0, first = 0;
};

// The checkpoint's 4-bit codes against those `settings` give from the original weight
// (the same compress_shard that made them: pruning, then bitsandbytes' rounding).
absl::StatusOr<CodeDiff> codes_differing(const Nf4Entry& e, const TensorRef& orig, const TensorVerdict& v,
                                         CompressSettings settings) {
  if (!e.int8) {
    settings.quantize->blocksize = e.state->blocksize;
    settings.quantize->double_quant = e.state->double_quant;
  }
  settings.quantize->quant_type = e.state->quant_type;
  const ModelTensor meta{v.name, TensorRole::kQProj, -1, TensorShape{orig.info->dtype, orig.info->shape}};
  const InputTensor in{&meta, orig.view().bytes};
  SP_ASSIGN_OR_RETURN(ShardResult result, compress_shard(std::span<const InputTensor>(&in, 1), settings));
  const std::vector<uint8_t>& want = result.groups.at(0).at(0).data;
  const auto got = e.parts.at("")->view().bytes;
  if (got.size() != want.size()) return absl::DataLossError("packed codes have the wrong size");
  CodeDiff d;
  d.total = static_cast<uint64_t>(e.state->rows) * static_cast<uint64_t>(e.state->cols);
  if (e.int8) {  // one byte per code
    for (uint64_t i = 0; i < d.total; ++i)
      if (got[i] != want[i] && d.count++ == 0) d.first = i;
    return d;
  }
  for (uint64_t i = 0; i < d.total; ++i) {
    const uint8_t a = got[i / 2], b = want[i / 2];
    const bool differ = i % 2 == 0 ? (a >> 4) != (b >> 4) : (a & 0x0f) != (b & 0x0f);  // element 2i: high nibble
    if (differ && d.count++ == 0) d.first = i;
  }
  return d;
}

}  // namespace

void compare_with_original(TensorVerdict& v, const std::vector<float>& got, const std::vector<float>& want) {
  double max_abs = 0, err2 = 0, ref2 = 0;
  size_t zeros = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    max_abs = std::max(max_abs, std::fabs(d));
    err2 += d * d;
    ref2 += static_cast<double>(want[i]) * want[i];
    zeros += got[i] == 0.0f;
  }
  v.max_abs_error = max_abs;
  v.rel_rmse = ref2 > 0 ? std::sqrt(err2 / ref2) : (err2 > 0 ? INFINITY : 0.0);
  v.zero_fraction = got.empty() ? 0.0 : static_cast<double>(zeros) / got.size();
}

absl::StatusOr<VerifyReport> verify_checkpoint(const std::string& dir, const VerifyOptions& options) {
  const std::optional<std::string>& against = options.against;
  const std::string& root = options.root;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return absl::NotFoundError(fmt::format("{}: not a folder", dir));
  if (against && !fs::is_directory(*against, ec))
    return absl::NotFoundError(fmt::format("{}: not a folder", *against));
  VerifyReport r;
  r.dir = dir;
  r.against = against;
  auto problem = [&](std::string s) { r.problems.push_back(std::move(s)); };

  // 1. config.json and quantization_config.
  const std::string config_path = (fs::path(dir) / "config.json").string();
  if (auto inside = resolve_in(dir, "config.json", root, "config.json"); !inside.ok()) {
    problem(std::string(inside.status().message()));
    return r;
  }
  auto config_text = read_file(config_path);
  if (!config_text.ok()) {
    problem(std::string(config_text.status().message()));
    return r;
  }
  ojson cj;
  try {
    cj = ojson::parse(*config_text);
  } catch (const std::exception& e) {
    problem(fmt::format("{}: not valid JSON: {}", config_path, e.what()));
    return r;
  }
  if (!cj.is_object() || !cj.contains("quantization_config") || !cj["quantization_config"].is_object()) {
    problem(fmt::format("{}: no quantization_config: not a bitsandbytes checkpoint", config_path));
    return r;
  }
  const ojson qc = cj["quantization_config"];
  auto qc_is = [&](const char* key, const ojson& want) {
    if (!qc.contains(key) || qc[key] != want)
      problem(fmt::format("{}: quantization_config.{} is {}, expected {}", config_path, key,
                          qc.contains(key) ? qc[key].dump() : "missing", want.dump()));
  };
  qc_is("quant_method", "bitsandbytes");
  if (qc.contains("llm_int8_threshold") && !qc["llm_int8_threshold"].is_number_float())
    problem(fmt::format("{}: quantization_config.llm_int8_threshold must be a float (6.0, not 6)", config_path));
  if (qc.value("load_in_8bit", false) == true) {  // LLM.int8 (B.3)
    qc_is("load_in_4bit", false);
    if (qc.value("llm_int8_has_fp16_weight", false) != false) qc_is("llm_int8_has_fp16_weight", false);
    r.quant_type = BnbType::kInt8;
  } else {  // 4-bit
    qc_is("load_in_4bit", true);
    const auto type = qc.contains("bnb_4bit_quant_type") && qc["bnb_4bit_quant_type"].is_string()
                          ? value_of(kBnbTypeNames, qc["bnb_4bit_quant_type"].get<std::string>())
                          : std::nullopt;
    if (!type || !is_4bit(*type))
      problem(fmt::format("{}: quantization_config.bnb_4bit_quant_type is {}, expected \"nf4\" or \"fp4\"", config_path,
                          qc.contains("bnb_4bit_quant_type") ? qc["bnb_4bit_quant_type"].dump() : "missing"));
    r.quant_type = type.value_or(BnbType::kNf4);
    qc_is("bnb_4bit_quant_storage", "uint8");
    if (qc.contains("load_in_8bit")) qc_is("load_in_8bit", false);
    if (!qc.contains("bnb_4bit_use_double_quant") || !qc["bnb_4bit_use_double_quant"].is_boolean())
      problem(fmt::format("{}: quantization_config.bnb_4bit_use_double_quant must be true or false", config_path));
    r.double_quant = qc.value("bnb_4bit_use_double_quant", false);
  }
  ojson base = cj;
  base.erase("quantization_config");
  auto config = parse_model_config(base.dump(), config_path);
  if (!config.ok()) {
    problem(std::string(config.status().message()));
    return r;
  }
  r.architecture = std::string(arch_class_name(config->arch));

  // 2. Weight files.
  auto files = ModelFiles::open(dir, root);
  if (!files.ok()) {
    problem(std::string(files.status().message()));
    return r;
  }

  // 3. Group tensors: quantized weights (found by their quant_state) and plain tensors.
  std::map<std::string, Nf4Entry> nf4;
  std::map<std::string, const TensorRef*> plain;
  group_tensors(*files, nf4, plain);

  std::map<std::string, std::vector<int64_t>> expected_shape;
  for (const auto& e : expected_tensors(*config)) expected_shape[e.name] = e.shape;
  std::map<std::string, TensorShape> logical;
  std::map<std::string, std::vector<float>> decoded_absmax;
  for (auto& [w, e] : nf4) {
    TensorVerdict v;
    v.name = w;
    v.quantized = true;
    if (!e.parts.count("")) {
      v.problem = fmt::format("missing tensor '{}'", w);
    } else {
      std::vector<float> absmax;
      v.problem = check_nf4(e, r.double_quant, r.quant_type, v, &absmax);
      v.kind = std::string(bnb_type_name(e.state ? e.state->quant_type : r.quant_type));
      if (v.problem.empty()) {
        decoded_absmax[w] = std::move(absmax);
        if (r.blocksize == 0) r.blocksize = e.state->blocksize;
      }
    }
    // A weight whose side tensors are broken is still present: describe it by its
    // quant_state, or else by the shape the config expects, so that one fault is
    // reported once (not again as a missing tensor).
    if (e.state) {
      logical[w] = TensorShape{v.dtype, v.shape};
    } else if (auto it = expected_shape.find(w); it != expected_shape.end()) {
      logical[w] = TensorShape{DType::kBF16, it->second};
    }
    if (!v.problem.empty()) problem(fmt::format("{}: {}", w, v.problem));
    r.tensors.push_back(std::move(v));
  }
  for (const auto& [name, ref] : plain) {
    TensorVerdict v;
    v.name = name;
    v.dtype = ref->info->dtype;
    v.shape = ref->info->shape;
    if (auto finite = check_finite(name, ref->view().bytes, v.dtype, v.shape); !finite.ok()) {
      v.problem = std::string(finite.message()).substr(name.size() + 2);
      problem(std::string(finite.message()));
    }
    logical[name] = TensorShape{v.dtype, v.shape};
    r.tensors.push_back(std::move(v));
  }

  // 4. The logical tensors must form the model config.json describes; every projection
  // weight quantized, nothing else.
  auto desc = describe_model(*config, logical, dir);
  if (!desc.ok()) {
    problem(std::string(desc.status().message()));
  } else {
    for (const auto& t : desc->tensors) {
      const bool q = nf4.count(t.name) > 0;
      if (is_linear_weight(t.role) && !q) problem(fmt::format("{}: projection weight is not quantized", t.name));
      if (!is_linear_weight(t.role) && q)
        problem(fmt::format("{}: {} must not be quantized (transformers keeps it unquantized)", t.name, role_name(t.role)));
    }
  }

  // 5. Manifest digests: every byte of every tensor and copied file.
  const std::string manifest_path = (fs::path(dir) / kManifestName).string();
  ojson compression;  // what the manifest says was done (null: no manifest, or an older one)
  if (fs::exists(fs::symlink_status(manifest_path, ec))) {
    r.manifest_checked = true;
    try {
      auto inside = resolve_in(dir, kManifestName, root, "manifest");
      if (!inside.ok()) throw std::runtime_error(std::string(inside.status().message()));
      const ojson m = ojson::parse(*read_file(manifest_path));
      if (m.value("format", "") != kManifestFormat) throw std::runtime_error("unknown manifest format");
      if (m.contains("compression")) compression = m["compression"];
      std::set<std::string> listed;
      for (const auto& [name, entry] : m.at("tensors").items()) {
        listed.insert(name);
        const TensorRef* ref = files->find(name);
        if (!ref) {
          problem(fmt::format("{}: listed in the manifest but missing from the files", name));
          continue;
        }
        const std::string got = digest_hex(ref->view().bytes);
        if (got != entry.at("digest").get<std::string>())
          problem(fmt::format("{}: bytes differ from the manifest (digest {} != {}) — the file is corrupt",
                              name, got, entry.at("digest").get<std::string>()));
      }
      for (const auto& [name, _] : files->tensors())
        if (!listed.count(name)) problem(fmt::format("{}: tensor not listed in the manifest", name));
      for (const auto& [fname, digest] : m.at("files").items()) {
        auto path = resolve_in(dir, fname, root, "file listed in the manifest");
        if (!path.ok()) {
          problem(std::string(path.status().message()));
          continue;
        }
        auto text = read_file(*path);
        if (!text.ok()) {
          problem(fmt::format("{}: listed in the manifest but cannot be read", fname));
          continue;
        }
        if (digest_hex({reinterpret_cast<const uint8_t*>(text->data()), text->size()}) != digest.get<std::string>())
          problem(fmt::format("{}: contents differ from the manifest", fname));
      }
    } catch (const std::exception& e) {
      problem(fmt::format("{}: unreadable manifest: {}", manifest_path, e.what()));
    }
  }

  // 6. Against the original model: dequantize and measure the error.
  auto decode = [&](const TensorVerdict& v) {
    if (!v.quantized) return to_float32(files->find(v.name)->view().bytes, v.dtype);
    return dequantize_entry(nf4.at(v.name), decoded_absmax.at(v.name));
  };
  if (against) {
    auto src = ModelFiles::open(*against);
    if (!src.ok()) {
      problem(std::string(src.status().message()));
      return r;
    }
    // The codes are compared with what round-to-nearest gives from the original (after
    // the magnitude pruning the manifest records); a checkpoint that records rounding to
    // nearest must have exactly those codes, and so must any with --exact.
    std::optional<CompressSettings> reference;
    if (compression.is_null()) {
      reference = CompressSettings{};
      reference->quantize = Nf4Settings{r.blocksize > 0 ? r.blocksize : 64, r.double_quant};
      reference->quantize->quant_type = r.quant_type;
    } else {
      reference = reproducible_settings(compression);
    }
    if (reference) {
      CompressSettings pruning = *reference;
      pruning.quantize.reset();
      r.reference = reference->prune ? describe(pruning) + ", then round to nearest" : "round to nearest";
    }
    r.exact = options.exact || (!compression.is_null() && reference.has_value());
    r.exact_reason = options.exact ? "--exact" : "the manifest records that it was made by rounding to nearest";
    for (auto& v : r.tensors) {
      if (!v.problem.empty()) continue;
      const TensorRef* orig = src->find(v.name);
      if (!orig) {
        v.problem = fmt::format("not in {}", *against);
        problem(fmt::format("{}: {}", v.name, v.problem));
        continue;
      }
      if (orig->info->shape != v.shape || !is_quantizable_float(orig->info->dtype)) {
        v.problem = fmt::format("shape/dtype differ from {}", *against);
        problem(fmt::format("{}: {}", v.name, v.problem));
        continue;
      }
      compare_with_original(v, decode(v), to_float32(orig->view().bytes, orig->info->dtype));
      if (!v.quantized) continue;
      if (!reference) {
        if (r.exact) {  // --exact on a checkpoint whose codes cannot be reproduced
          v.problem = "its codes cannot be compared with rounding to nearest: the manifest records a data-dependent method";
          problem(fmt::format("{}: {}", v.name, v.problem));
        }
        continue;
      }
      auto differ = codes_differing(nf4.at(v.name), *orig, v, *reference);
      if (!differ.ok()) {
        v.problem = std::string(differ.status().message());
        problem(fmt::format("{}: {}", v.name, v.problem));
        continue;
      }
      v.codes_differ = differ->count;
      v.codes_total = differ->total;
      if (r.exact && differ->count > 0) {
        v.problem = fmt::format("{} of {} {} codes differ from {} of the original (the first at element {})",
                                differ->count, differ->total, bnb_type_label(r.quant_type),
                                r.reference, differ->first);
        problem(fmt::format("{}: {}", v.name, v.problem));
      }
    }
  }
  return r;
}

struct CheckpointDecoder::Impl {
  ModelFiles files;
  std::map<std::string, Nf4Entry> nf4;
  std::map<std::string, const TensorRef*> plain;
  std::map<std::string, std::vector<float>> absmax;  // decoded, per quantized weight
  ModelDescription desc;
};

CheckpointDecoder::CheckpointDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CheckpointDecoder::~CheckpointDecoder() = default;
const ModelDescription& CheckpointDecoder::desc() const { return impl_->desc; }

absl::StatusOr<std::unique_ptr<CheckpointDecoder>> CheckpointDecoder::open(const std::string& dir,
                                                                           const std::string& root) {
  SP_ASSIGN_OR_RETURN(VerifyReport report, verify_checkpoint(dir, std::nullopt, root));
  if (!report.ok()) {
    std::string msg = fmt::format("{}: the checkpoint does not verify:", dir);
    for (size_t i = 0; i < report.problems.size() && i < 3; ++i) msg += "\n  " + report.problems[i];
    return absl::InvalidArgumentError(msg);
  }
  auto impl = std::make_unique<Impl>();
  SP_ASSIGN_OR_RETURN(impl->files, ModelFiles::open(dir, root));
  group_tensors(impl->files, impl->nf4, impl->plain);
  std::map<std::string, TensorShape> logical;
  for (const auto& v : report.tensors) logical[v.name] = TensorShape{DType::kF32, v.shape};
  for (auto& [w, e] : impl->nf4) {
    TensorVerdict v;
    std::vector<float> absmax;
    const std::string problem = check_nf4(e, report.double_quant, report.quant_type, v, &absmax);
    if (!problem.empty()) return absl::DataLossError(fmt::format("{}: {}", w, problem));  // changed since verify
    impl->absmax[w] = std::move(absmax);
  }
  SP_ASSIGN_OR_RETURN(const std::string config_path, resolve_in(dir, "config.json", root, "config.json"));
  SP_ASSIGN_OR_RETURN(std::string text, read_file(config_path));
  ojson cj = ojson::parse(text, nullptr, false);
  if (cj.is_discarded() || !cj.is_object()) return absl::InvalidArgumentError(config_path + ": not valid JSON");
  cj.erase("quantization_config");
  SP_ASSIGN_OR_RETURN(ModelConfig config, parse_model_config(cj.dump(), config_path));
  SP_ASSIGN_OR_RETURN(impl->desc, describe_model(config, logical, dir));
  return std::unique_ptr<CheckpointDecoder>(new CheckpointDecoder(std::move(impl)));
}

absl::StatusOr<std::vector<float>> CheckpointDecoder::decode(const std::string& name) const {
  if (auto p = impl_->plain.find(name); p != impl_->plain.end()) {
    std::vector<float> v = to_float32(p->second->view().bytes, p->second->info->dtype);
    p->second->release();
    return v;
  }
  auto e = impl_->nf4.find(name);
  if (e == impl_->nf4.end()) return absl::NotFoundError(fmt::format("{}: not in the checkpoint", name));
  return dequantize_entry(e->second, impl_->absmax.at(name));
}

}  // namespace sp
