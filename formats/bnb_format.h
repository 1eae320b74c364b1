// The bitsandbytes 4-bit serialization (nf4-format.md §7-§8): which state-dict keys a
// quantized Linear weight becomes, the quant_state JSON bytes, and the
// `quantization_config` block of config.json. Format knowledge only, no arithmetic.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/name_table.h"
#include "common/status.h"
#include "formats/safetensors_writer.h"
#include "nlohmann/json.hpp"

namespace sp {

// bitsandbytes' 4-bit data types (bnb_4bit_quant_type): NormalFloat4 and FP4 (a 1-sign,
// 2-exponent, 1-mantissa float with a subnormal step; bnb-fp4-int8-format.md Part A). They
// share everything but the code book, the quantizer, the state blob's name and one config
// value.
enum class Bnb4Type { kNf4, kFp4 };
inline constexpr NameRow<Bnb4Type> kBnb4TypeNames[] = {{Bnb4Type::kNf4, "nf4"}, {Bnb4Type::kFp4, "fp4"}};
inline std::string_view bnb4_type_name(Bnb4Type t) { return name_of(kBnb4TypeNames, t); }
// ".quant_state.bitsandbytes__nf4" / "__fp4": the suffix of a quantized weight's state blob.
inline std::string quant_state_suffix(Bnb4Type t) {
  return std::string(".quant_state.bitsandbytes__") + std::string(bnb4_type_name(t));
}
inline const std::string kQuantStateSuffix = quant_state_suffix(Bnb4Type::kNf4);

// How weights are quantized; defaults reproduce the common bitsandbytes setting.
struct Nf4Settings {
  int blocksize = 64;
  bool double_quant = true;
  DType compute_dtype = DType::kBF16;
  Bnb4Type quant_type = Bnb4Type::kNf4;
};

// The quant_state JSON bytes exactly as json.dumps writes them, e.g.
// {"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [4096, 11008],
//  "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.0123}
// `nested_offset` is given with double quantization only.
std::string quant_state_json(int blocksize, DType weight_dtype, int64_t rows, int64_t cols,
                             std::optional<float> nested_offset, Bnb4Type type = Bnb4Type::kNf4);

// Parsed quant_state JSON.
struct QuantState {
  int blocksize = 0;
  DType dtype = DType::kBF16;
  int64_t rows = 0, cols = 0;
  bool double_quant = false;
  int nested_blocksize = 0;
  float nested_offset = 0.0f;
  Bnb4Type quant_type = Bnb4Type::kNf4;
};
// Parses and checks the JSON (key set and order, types, values bitsandbytes accepts).
// The error says what is wrong; the caller names the tensor.
absl::StatusOr<QuantState> parse_quant_state_json(std::string_view text);

// The output keys of one quantized weight `weight_name` ("...q_proj.weight"): weight,
// absmax, quant_map, [nested_absmax, nested_quant_map,] quant_state — in this order,
// with the dtypes and shapes of §7. `json_bytes` is the quant_state length.
std::vector<TensorSpec> nf4_weight_specs(const std::string& weight_name, int64_t rows, int64_t cols,
                                         int blocksize, bool double_quant, size_t json_bytes,
                                         Bnb4Type type = Bnb4Type::kNf4);

// Side-tensor suffixes (after "<weight_name>.") that a quantized weight may have.
bool is_nf4_side_suffix(std::string_view suffix);

// config.json's "quantization_config" for these settings (keys sorted, as
// BitsAndBytesConfig.to_dict() writes them; lm_head listed in llm_int8_skip_modules).
nlohmann::ordered_json bnb_quantization_config(const Nf4Settings& s);

}  // namespace sp
