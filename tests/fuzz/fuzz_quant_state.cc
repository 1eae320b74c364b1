// libFuzzer: the quant_state JSON a checkpoint carries (read by `verify`).
#include "formats/bnb_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto q = sp::parse_quant_state_json(text);
  if (q.ok() && sp::quant_state_json(q->blocksize, q->dtype, q->rows, q->cols,
                                     q->double_quant ? std::optional<float>(q->nested_offset) : std::nullopt) != text)
    __builtin_trap();  // accepted implies canonical bytes
  return 0;
}
