// libFuzzer: worker/coordinator YAML configs.
#include "common/config_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string a, b, c;
  (void)sp::parse_config_text({reinterpret_cast<const char*>(data), size}, "fuzz.yaml",
                              {{"listen", &a}, {"cache_dir", &b}, {"memory", &c}});
  return 0;
}
