#include "cli/follow.h"

#include <chrono>
#include <cstdio>
#include <thread>

#include "cli/coordinator_api.h"
#include "cli/job_view.h"
#include "cli/output.h"

namespace sp::cli {

using namespace shardpress::v1;  // NOLINT

int follow_job(const std::function<absl::StatusOr<JobStatus>()>& get, const std::string& address,
               int64_t unreachable_ms, const std::function<bool()>& interrupted, bool final_view_on_stdout) {
  const bool tty = stderr_is_tty();
  std::string last;
  int64_t failing_ms = 0;
  const int64_t poll_ms = 250;
  while (true) {
    auto s = get();
    if (!s.ok()) {
      if ((absl::IsUnavailable(s.status()) || absl::IsDeadlineExceeded(s.status())) && failing_ms < unreachable_ms) {
        failing_ms += poll_ms;
        std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
        continue;
      }
      return report_rpc_error(s.status(), address);
    }
    failing_ms = 0;
    if (tty) {
      const std::string view = render_job(*s, true);
      if (view != last) {
        std::fprintf(stderr, "\x1b[H\x1b[2J%s", view.c_str());
        last = view;
      }
    } else {
      const std::string line = s->id() + " " + state_text(s->state()) + " " + s->phase() + " " +
                               std::to_string(s->tasks_done()) + "/" + std::to_string(s->tasks_total()) + " tasks";
      if (line != last) {
        std::fprintf(stderr, "%s\n", line.c_str());
        last = line;
      }
    }
    if (job_finished(s->state())) {
      std::fprintf(final_view_on_stdout ? stdout : stderr, "%s", render_job(*s, false).c_str());
      return s->state() == SUCCEEDED ? kExitOk : kExitFailed;
    }
    if (interrupted()) return kExitFailed;
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
  }
}

}  // namespace sp::cli
