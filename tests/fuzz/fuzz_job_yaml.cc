// libFuzzer: job spec YAML.
#include "jobs/job_yaml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto s = sp::parse_job_yaml({reinterpret_cast<const char*>(data), size}, "fuzz.yaml");
  if (s.ok() && !sp::validate_job_spec(*s).ok()) __builtin_trap();  // parse implies valid
  return 0;
}
