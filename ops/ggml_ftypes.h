// What a GGUF file's `type` means, tensor by tensor: llama-quantize's file types
// (llama_ftype) as one table — the single types put every quantized tensor in one ggml
// type (what `llama-quantize --pure` does), the mixes (Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M)
// follow llama-quantize's per-tensor rules (`llama_tensor_get_type`,
// ../shared/docs/gguf-format.md §7) — and the fallback when a row fills no block of the
// chosen type (§7.5; where llama-quantize refuses a 32-block type we fall back to F16).
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ops/ggml_quants.h"

namespace sp {

struct GgufFtype {
  std::string_view name;   // "Q4_K_M"; case-insensitive on input
  uint32_t file_type = 0;  // general.file_type
  GgmlType base = GgmlType::kF32;  // the type of quantized tensors no rule changes
  bool mix = false;                // llama-quantize's per-tensor rules apply
};

std::span<const GgufFtype> gguf_ftypes();
std::optional<GgufFtype> gguf_ftype_from_name(std::string_view name);
std::string gguf_ftype_names();  // "F32, F16, ..., Q5_K_M" for messages

// Whether llama-quantize quantizes a tensor at all (§7.1): 2-D or more, a `.weight`,
// not a norm. Everything else stays F32.
bool gguf_quantizable(std::string_view gguf_name, int ndims);

// Where a quantizable tensor sits, for the rules.
struct GgufTensorSite {
  std::string_view name;    // GGUF name ("blk.3.attn_v.weight")
  int64_t row = 0;          // ne[0]: elements per row
  int layer = -1;           // blk index, -1 outside the blocks
  int n_layers = 0;
  int64_t n_gqa = 1;        // head_count / head_count_kv
  bool has_output = true;   // a separate output.weight (else token_embd takes the output rule)
  bool is_70b = false;      // llama with 80 layers and grouped KV heads, or qwen2 with 80
};

struct GgufTypeChoice {
  GgmlType type = GgmlType::kF32;
  std::string fallback;  // non-empty when the rows fit no block of the type the rules chose
};

GgufTypeChoice choose_gguf_type(const GgufFtype& ftype, const GgufTensorSite& site);

}  // namespace sp
