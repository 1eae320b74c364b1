#include "common/dtype.h"

#include <array>

namespace sp {
namespace {

struct DTypeRow {
  DType type;
  std::string_view name;
  size_t size;
};

constexpr std::array<DTypeRow, 15> kDTypes = {{
    {DType::kF64, "F64", 8},   {DType::kF32, "F32", 4},  {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2}, {DType::kI64, "I64", 8},  {DType::kI32, "I32", 4},
    {DType::kI16, "I16", 2},   {DType::kI8, "I8", 1},    {DType::kU64, "U64", 8},
    {DType::kU32, "U32", 4},   {DType::kU16, "U16", 2},  {DType::kU8, "U8", 1},
    {DType::kBool, "BOOL", 1}, {DType::kF8E4M3, "F8_E4M3", 1},
    {DType::kF8E5M2, "F8_E5M2", 1},
}};

const DTypeRow& row(DType t) { return kDTypes[static_cast<size_t>(t)]; }

}  // namespace

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& r : kDTypes)
    if (r.name == name) return r.type;
  return std::nullopt;
}

std::string_view dtype_name(DType t) { return row(t).name; }
size_t dtype_size(DType t) { return row(t).size; }

bool is_quantizable_float(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16;
}

std::optional<std::string_view> torch_dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "float32";
    case DType::kF16: return "float16";
    case DType::kBF16: return "bfloat16";
    default: return std::nullopt;
  }
}

std::optional<DType> dtype_from_torch_name(std::string_view name) {
  if (name.starts_with("torch.")) name.remove_prefix(6);
  if (name == "float32" || name == "float") return DType::kF32;
  if (name == "float16" || name == "half") return DType::kF16;
  if (name == "bfloat16") return DType::kBF16;
  return std::nullopt;
}

}  // namespace sp
