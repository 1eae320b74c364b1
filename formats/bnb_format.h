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

// bitsandbytes' quantized types: the 4-bit NormalFloat4 and FP4 (bnb_4bit_quant_type; FP4
// is a 1-sign, 2-exponent, 1-mantissa float with a subnormal step, bnb-fp4-int8-format.md
// Part A) — they share everything but the code book, the quantizer, the state blob's name
// and one config value — and LLM.int8's row-wise 8-bit weights (load_in_8bit, Part B: an
// int8 weight, its rows' absmax `SCB` and a `weight_format`; no blocks, no state blob).
enum class BnbType { kNf4, kFp4, kInt8 };
inline constexpr NameRow<BnbType> kBnbTypeNames[] = {
    {BnbType::kNf4, "nf4"}, {BnbType::kFp4, "fp4"}, {BnbType::kInt8, "int8"}};
inline constexpr bool is_4bit(BnbType t) { return t != BnbType::kInt8; }
// "NF4", "FP4", "INT8": how messages and summaries name the type.
inline std::string_view bnb_type_label(BnbType t) {
  return t == BnbType::kFp4 ? "FP4" : t == BnbType::kInt8 ? "INT8" : "NF4";
}
inline std::string_view bnb_type_name(BnbType t) { return name_of(kBnbTypeNames, t); }
// ".quant_state.bitsandbytes__nf4" / "__fp4": the suffix of a quantized weight's state blob.
inline std::string quant_state_suffix(BnbType t) {
  return std::string(".quant_state.bitsandbytes__") + std::string(bnb_type_name(t));
}

// How weights are quantized; defaults reproduce the common bitsandbytes setting.
struct Nf4Settings {
  int blocksize = 64;
  bool double_quant = true;
  DType compute_dtype = DType::kBF16;
  BnbType quant_type = BnbType::kNf4;
};

// The quant_state JSON bytes exactly as json.dumps writes them, e.g.
// {"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [4096, 11008],
//  "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.0123}
// `nested_offset` is given with double quantization only.
std::string quant_state_json(int blocksize, DType weight_dtype, int64_t rows, int64_t cols,
                             std::optional<float> nested_offset, BnbType type = BnbType::kNf4);

// Parsed quant_state JSON.
struct QuantState {
  int blocksize = 0;
  DType dtype = DType::kBF16;
  int64_t rows = 0, cols = 0;
  bool double_quant = false;
  int nested_blocksize = 0;
  float nested_offset = 0.0f;
  BnbType quant_type = BnbType::kNf4;
};
// Parses and checks the JSON (key set and order, types, values bitsandbytes accepts).
// The error says what is wrong; the caller names the tensor.
absl::StatusOr<QuantState> parse_quant_state_json(std::string_view text);

// The output keys of one quantized weight `weight_name` ("...q_proj.weight"): weight,
// absmax, quant_map, [nested_absmax, nested_quant_map,] quant_state — in this order,
// with the dtypes and shapes of §7. `json_bytes` is the quant_state length.
std::vector<TensorSpec> nf4_weight_specs(const std::string& weight_name, int64_t rows, int64_t cols,
                                         int blocksize, bool double_quant, size_t json_bytes,
                                         BnbType type = BnbType::kNf4);

// The tensors of an LLM.int8 Linear `P` (B.2): P.weight I8 [rows, cols] (the codes),
// P.SCB F32 [rows] (each row's absmax), P.weight_format U8 [] (0: row-major), in this order.
std::vector<TensorSpec> int8_weight_specs(const std::string& weight_name, int64_t rows, int64_t cols);
// "<P>.SCB" and "<P>.weight_format" of the weight "<P>.weight".
std::string int8_scb_name(const std::string& weight_name);
std::string int8_format_name(const std::string& weight_name);

// Side-tensor suffixes (after "<weight_name>.") that a quantized weight may have.
bool is_nf4_side_suffix(std::string_view suffix);

// config.json's "quantization_config" for these settings (keys sorted, as
// BitsAndBytesConfig.to_dict() writes them; lm_head listed in llm_int8_skip_modules).
nlohmann::ordered_json bnb_quantization_config(const Nf4Settings& s);

}  // namespace sp
