#include "formats/bnb_format.h"

#include <cmath>

#include "common/py_float.h"
#include "fmt/format.h"
#include "fmt/ranges.h"

namespace sp {
namespace {
using ojson = nlohmann::ordered_json;

constexpr const char* kSideSuffixes[] = {"absmax", "quant_map", "nested_absmax", "nested_quant_map",
                                         "quant_state.bitsandbytes__nf4", "quant_state.bitsandbytes__fp4"};
}  // namespace

std::string quant_state_json(int blocksize, DType weight_dtype, int64_t rows, int64_t cols,
                             std::optional<float> nested_offset, BnbType type) {
  const auto dt = torch_dtype_name(weight_dtype);
  std::string s = fmt::format(R"({{"quant_type": "{}", "blocksize": {}, "dtype": "{}", "shape": [{}, {}])",
                              bnb_type_name(type), blocksize, dt ? *dt : "float32", rows, cols);
  if (nested_offset) {
    s += fmt::format(R"(, "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": {})",
                     python_float_repr(static_cast<double>(*nested_offset)));
  }
  s += "}";
  return s;
}

absl::StatusOr<QuantState> parse_quant_state_json(std::string_view text) {
  ojson j;
  try {
    j = ojson::parse(text);
  } catch (const ojson::exception& e) {
    return absl::DataLossError(fmt::format("quant_state is not valid JSON: {}", e.what()));
  }
  if (!j.is_object()) return absl::DataLossError("quant_state JSON is not an object");
  const bool dq = j.contains("nested_offset");
  std::vector<std::string> expected = {"quant_type", "blocksize", "dtype", "shape"};
  if (dq) expected.insert(expected.end(), {"nested_blocksize", "nested_dtype", "nested_offset"});
  std::vector<std::string> keys;
  for (const auto& [k, _] : j.items()) keys.push_back(k);
  if (keys != expected)
    return absl::DataLossError(fmt::format("quant_state keys are [{}], expected [{}]",
                                           fmt::join(keys, ", "), fmt::join(expected, ", ")));
  QuantState q;
  const auto type = j["quant_type"].is_string() ? value_of(kBnbTypeNames, j["quant_type"].get<std::string>())
                                                : std::nullopt;
  if (!type || !is_4bit(*type))
    return absl::DataLossError(fmt::format("quant_type is {}, expected \"nf4\" or \"fp4\"", j["quant_type"].dump()));
  q.quant_type = *type;
  if (!j["blocksize"].is_number_integer()) return absl::DataLossError("blocksize is not an integer");
  q.blocksize = j["blocksize"].get<int>();
  if (!j["dtype"].is_string() || !dtype_from_torch_name(j["dtype"].get<std::string>()))
    return absl::DataLossError(fmt::format("dtype {} is not bfloat16, float16 or float32", j["dtype"].dump()));
  q.dtype = *dtype_from_torch_name(j["dtype"].get<std::string>());
  const auto& sh = j["shape"];
  if (!sh.is_array() || sh.size() != 2 || !sh[0].is_number_unsigned() || !sh[1].is_number_unsigned())
    return absl::DataLossError(fmt::format("shape {} is not [out_features, in_features]", sh.dump()));
  // Each side at most 2^31, so rows * cols and every size derived from it fit in 64 bits.
  constexpr uint64_t kMaxSide = uint64_t{1} << 31;
  if (sh[0].get<uint64_t>() > kMaxSide || sh[1].get<uint64_t>() > kMaxSide)
    return absl::DataLossError(fmt::format("shape {} is larger than any weight", sh.dump()));
  q.rows = sh[0].get<int64_t>();
  q.cols = sh[1].get<int64_t>();
  if (dq) {
    q.double_quant = true;
    if (j["nested_blocksize"] != 256) return absl::DataLossError("nested_blocksize is not 256");
    if (j["nested_dtype"] != "float32") return absl::DataLossError("nested_dtype is not \"float32\"");
    if (!j["nested_offset"].is_number_float() || !std::isfinite(j["nested_offset"].get<double>()))
      return absl::DataLossError("nested_offset is not a finite number");
    q.nested_blocksize = 256;
    q.nested_offset = static_cast<float>(j["nested_offset"].get<double>());
  }
  // The bytes must be exactly what json.dumps writes for these values.
  const std::string canonical = quant_state_json(q.blocksize, q.dtype, q.rows, q.cols,
                                                 dq ? std::optional<float>(q.nested_offset) : std::nullopt, q.quant_type);
  if (canonical != text)
    return absl::DataLossError(fmt::format("quant_state JSON bytes differ from the canonical form {}", canonical));
  return q;
}

std::vector<TensorSpec> nf4_weight_specs(const std::string& weight_name, int64_t rows, int64_t cols,
                                         int blocksize, bool double_quant, size_t json_bytes, BnbType type) {
  const int64_t n = rows * cols;
  const int64_t nb = (n + blocksize - 1) / blocksize;
  std::vector<TensorSpec> out;
  out.push_back({weight_name, DType::kU8, {(n + 1) / 2, 1}});
  out.push_back({weight_name + ".absmax", double_quant ? DType::kU8 : DType::kF32, {nb}});
  out.push_back({weight_name + ".quant_map", DType::kF32, {16}});
  if (double_quant) {
    out.push_back({weight_name + ".nested_absmax", DType::kF32, {(nb + 255) / 256}});
    out.push_back({weight_name + ".nested_quant_map", DType::kF32, {256}});
  }
  out.push_back({weight_name + quant_state_suffix(type), DType::kU8, {static_cast<int64_t>(json_bytes)}});
  return out;
}

namespace {
std::string module_of(const std::string& weight_name) {
  return weight_name.ends_with(".weight") ? weight_name.substr(0, weight_name.size() - 7) : weight_name;
}
}  // namespace

std::string int8_scb_name(const std::string& weight_name) { return module_of(weight_name) + ".SCB"; }
std::string int8_format_name(const std::string& weight_name) { return module_of(weight_name) + ".weight_format"; }

std::vector<TensorSpec> int8_weight_specs(const std::string& weight_name, int64_t rows, int64_t cols) {
  return {{weight_name, DType::kI8, {rows, cols}},
          {int8_scb_name(weight_name), DType::kF32, {rows}},
          {int8_format_name(weight_name), DType::kU8, {}}};
}

bool is_nf4_side_suffix(std::string_view suffix) {
  for (const char* s : kSideSuffixes)
    if (suffix == s) return true;
  return false;
}

ojson bnb_quantization_config(const Nf4Settings& s) {
  // int8 (B.3): load_in_8bit, the 4-bit keys at BitsAndBytesConfig's defaults.
  const bool int8 = s.quant_type == BnbType::kInt8;
  const auto compute = torch_dtype_name(s.compute_dtype);
  ojson q = ojson::object();
  q["_load_in_4bit"] = !int8;
  q["_load_in_8bit"] = int8;
  q["bnb_4bit_compute_dtype"] = int8 ? "float32" : compute ? std::string(*compute) : "bfloat16";
  q["bnb_4bit_quant_storage"] = "uint8";
  q["bnb_4bit_quant_type"] = int8 ? std::string("fp4") : std::string(bnb_type_name(s.quant_type));
  q["bnb_4bit_use_double_quant"] = !int8 && s.double_quant;
  q["llm_int8_enable_fp32_cpu_offload"] = false;
  q["llm_int8_has_fp16_weight"] = false;
  q["llm_int8_skip_modules"] = ojson::array({"lm_head"});
  q["llm_int8_threshold"] = 6.0;
  q["load_in_4bit"] = !int8;
  q["load_in_8bit"] = int8;
  q["quant_method"] = "bitsandbytes";
  return q;
}

}  // namespace sp
