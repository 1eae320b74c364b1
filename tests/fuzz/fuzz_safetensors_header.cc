// libFuzzer: the safetensors header parser. Input: 8 bytes of data-section length, then
// the header text.
#include <cstring>

#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  uint64_t data_len;
  std::memcpy(&data_len, data, 8);
  data_len %= 1ull << 40;
  const std::string_view text(reinterpret_cast<const char*>(data + 8), size - 8);
  auto h = sp::parse_safetensors_header(text, data_len, "fuzz.safetensors");
  if (h.ok()) {
    uint64_t pos = 0;
    for (const auto& t : h->tensors) {  // the contract: tensors tile the data section
      if (t.begin != pos || t.end < t.begin) __builtin_trap();
      pos = t.end;
    }
    if (pos != data_len) __builtin_trap();
  }
  return 0;
}
