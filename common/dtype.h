// Element types of tensors as safetensors names them, and their sizes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace sp {

enum class DType : uint8_t {
  kF64, kF32, kF16, kBF16,
  kI64, kI32, kI16, kI8,
  kU64, kU32, kU16, kU8,
  kBool, kF8E4M3, kF8E5M2,
};

// The safetensors name ("BF16"), or nullopt for an unknown name.
std::optional<DType> dtype_from_name(std::string_view name);
// "BF16", "F32", ...
std::string_view dtype_name(DType t);
// Bytes per element.
size_t dtype_size(DType t);
// True for the three types a weight can be quantized from: F32, F16, BF16.
bool is_quantizable_float(DType t);
// torch's name as bitsandbytes stores it in quant_state ("bfloat16", "float16",
// "float32"), or nullopt for other types.
std::optional<std::string_view> torch_dtype_name(DType t);
// Inverse of torch_dtype_name; also accepts "torch.bfloat16" style names.
std::optional<DType> dtype_from_torch_name(std::string_view name);

}  // namespace sp
