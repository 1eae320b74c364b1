// Test hooks of the daemons, given as a hidden flag (--test-hooks "import=200,task=300"),
// never read from the environment: end-to-end tests slow phases down to kill a process at
// a chosen point, or make the output disk fill up.
//
//   import=MS     coordinator: sleep after each imported tensor
//   assemble=MS   coordinator: sleep after each assembled tensor
//   enospc=BYTES  coordinator: the output's tensor writes fail with ENOSPC after this many
//   task=MS       worker (and `local`): each task takes this much longer
#pragma once

#include <cstdint>
#include <string_view>

#include "common/status.h"

namespace sp {

struct TestHooks {
  int64_t import_delay_ms = 0;
  int64_t assemble_delay_ms = 0;
  int64_t task_delay_ms = 0;
  uint64_t enospc_after_bytes = 0;
};

absl::StatusOr<TestHooks> parse_test_hooks(std::string_view text);

}  // namespace sp
