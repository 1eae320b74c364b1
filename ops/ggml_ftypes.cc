#include "ops/ggml_ftypes.h"

#include <algorithm>
#include <cctype>

#include "fmt/format.h"

namespace sp {
namespace {

// general.file_type numbers: llama.h's llama_ftype (§1.5). The single K types write what
// `llama-quantize --pure X Q4_K` writes (Q4_K is its alias of Q4_K_M).
constexpr GgufFtype kFtypes[] = {
    {"F32", 0, GgmlType::kF32},       {"F16", 1, GgmlType::kF16},         {"BF16", 32, GgmlType::kBF16},
    {"Q8_0", 7, GgmlType::kQ8_0},     {"Q4_0", 2, GgmlType::kQ4_0},       {"Q4_1", 3, GgmlType::kQ4_1},
    {"Q5_0", 8, GgmlType::kQ5_0},     {"Q5_1", 9, GgmlType::kQ5_1},       {"IQ4_NL", 25, GgmlType::kIQ4_NL},
    {"Q4_K", 15, GgmlType::kQ4_K},    {"Q5_K", 17, GgmlType::kQ5_K},      {"Q6_K", 18, GgmlType::kQ6_K},
    {"Q4_K_S", 14, GgmlType::kQ4_K, true}, {"Q4_K_M", 15, GgmlType::kQ4_K, true},
    {"Q5_K_S", 16, GgmlType::kQ5_K, true}, {"Q5_K_M", 17, GgmlType::kQ5_K, true},
};

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) == std::toupper(static_cast<unsigned char>(y));
         });
}

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// use_more_bits: the first and last eighth of the layers and every third in between.
bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// llama_tensor_get_type for a dense model and the mixes we write (§7.3).
GgmlType mix_rule(const GgufFtype& f, const GgufTensorSite& s) {
  const std::string_view n = f.name;
  const bool is_output = s.name == "output.weight" || (!s.has_output && s.name == "token_embd.weight");
  if (is_output) return s.row % ggml_traits(f.base).block != 0 ? GgmlType::kQ8_0 : GgmlType::kQ6_K;
  GgmlType t = f.base;
  const int i = s.layer, layers = s.n_layers;
  if (contains(s.name, "attn_v.weight")) {
    if (n == "Q4_K_M") t = more_bits(i, layers) ? GgmlType::kQ6_K : GgmlType::kQ4_K;
    else if (n == "Q4_K_S" && i < 4) t = GgmlType::kQ5_K;
    else if (n == "Q5_K_M" && more_bits(i, layers)) t = GgmlType::kQ6_K;
    if (s.is_70b && t == GgmlType::kQ4_K) t = GgmlType::kQ5_K;
  } else if (contains(s.name, "ffn_down")) {
    if ((n == "Q4_K_M" || n == "Q5_K_M") && more_bits(i, layers)) t = GgmlType::kQ6_K;
    else if (n == "Q4_K_S" && i < layers / 8) t = GgmlType::kQ5_K;
  }
  return t;
}

}  // namespace

std::span<const GgufFtype> gguf_ftypes() { return kFtypes; }

std::optional<GgufFtype> gguf_ftype_from_name(std::string_view name) {
  for (const auto& f : kFtypes)
    if (iequal(f.name, name)) return f;
  return std::nullopt;
}

std::string gguf_ftype_names() {
  std::string out;
  for (const auto& f : kFtypes) out += (out.empty() ? "" : ", ") + std::string(f.name);
  return out;
}

bool gguf_quantizable(std::string_view gguf_name, int ndims) {
  return ndims >= 2 && gguf_name.ends_with("weight") && !contains(gguf_name, "_norm.weight");
}

GgufTypeChoice choose_gguf_type(const GgufFtype& ftype, const GgufTensorSite& site) {
  GgufTypeChoice c;
  c.type = ftype.mix ? mix_rule(ftype, site) : ftype.base;
  const GgmlTypeTraits& want = ggml_traits(c.type);
  if (site.row % want.block == 0) return c;
  // §7.5: a K type falls back to a 32-block type of about the same bits, then F16.
  GgmlType next = GgmlType::kF16;
  if (c.type == GgmlType::kQ4_K) next = GgmlType::kQ5_0;
  else if (c.type == GgmlType::kQ5_K) next = GgmlType::kQ5_1;
  else if (c.type == GgmlType::kQ6_K) next = GgmlType::kQ8_0;
  if (site.row % ggml_traits(next).block != 0) next = GgmlType::kF16;
  c.fallback = fmt::format("{}: {} columns, not whole {} blocks of {}: {}", site.name, site.row, want.name, want.block,
                           ggml_traits(next).name);
  c.type = next;
  return c;
}

}  // namespace sp
