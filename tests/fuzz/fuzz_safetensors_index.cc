// libFuzzer: model.safetensors.index.json.
#include "formats/model_files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto m = sp::parse_safetensors_index({reinterpret_cast<const char*>(data), size}, "fuzz.index.json");
  if (m.ok())
    for (const auto& [tensor, file] : *m)
      if (file.empty() || file.find('/') != std::string::npos || file == "..") __builtin_trap();  // confinement
  return 0;
}
