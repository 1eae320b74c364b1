// libFuzzer: config.json -> model description (with the tensors the config implies).
#include "formats/model_config.h"
#include "formats/model_layout.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto c = sp::parse_model_config({reinterpret_cast<const char*>(data), size}, "fuzz/config.json");
  if (!c.ok()) return 0;  // every size a config may give is bounded by the parser's limits
  std::map<std::string, sp::TensorShape> actual;
  for (const auto& e : sp::expected_tensors(*c))
    if (!e.optional) actual[e.name] = {sp::DType::kBF16, e.shape};
  auto d = sp::describe_model(*c, actual, "fuzz");
  if (!d.ok()) __builtin_trap();  // a config's own tensors must always describe cleanly
  return 0;
}
