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
               const FollowOptions& o) {
  const bool tty = stderr_is_tty();
  std::string last;
  int64_t failing_ms = 0;
  bool reached = false;
  const int64_t poll_ms = o.poll_ms;
  while (true) {
    auto s = get();
    if (!s.ok()) {
      const bool unreachable = absl::IsUnavailable(s.status()) || absl::IsDeadlineExceeded(s.status());
      if (reached && unreachable && failing_ms < o.unreachable_ms) {
        failing_ms += poll_ms;
        std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
        continue;
      }
      return report_rpc_error(s.status(), address);
    }
    reached = true;
    failing_ms = 0;
    if (tty) {
      const std::string view = render_job(*s, true, terminal_rows() - 1);
      if (view != last) {
        std::fprintf(stderr, "\x1b[H\x1b[2J%s", view.c_str());
        last = view;
      }
    } else {
      const std::string line = s->id() + " " + job_state_text(s->state()) + " " + s->phase() + " " +
                               std::to_string(s->tasks_done()) + "/" + std::to_string(s->tasks_total()) + " tasks";
      if (line != last) {
        std::fprintf(stderr, "%s\n", line.c_str());
        last = line;
      }
    }
    if (job_terminal(s->state())) {
      const std::string view = o.json ? to_json(*s) + "\n" : render_job(*s, false);
      std::fputs(view.c_str(), o.final_view_on_stdout ? stdout : stderr);
      return s->state() == SUCCEEDED ? kExitOk : kExitFailed;
    }
    if (o.interrupted()) return kExitFailed;
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
  }
}

}  // namespace sp::cli
