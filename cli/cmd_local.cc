// shardpress local JOB.yaml [--workers N] [--state-dir DIR]: the embedded default. A
// coordinator and N workers in this process, talking gRPC over loopback (the same code
// paths as a lab), run one job to the end. Rerunning with the same state dir resumes the
// same spec; an edited spec is refused (exit 2, naming what changed) unless --fresh.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/commands.h"
#include "cli/follow.h"
#include "cli/job_view.h"
#include "cli/output.h"
#include "common/byte_size.h"
#include "common/test_hooks.h"
#include "jobs/job_settings.h"
#include "coordinator/runtime.h"
#include "fmt/format.h"
#include "worker/device.h"
#include "worker/worker.h"

namespace sp::cli {
namespace {

using namespace shardpress::v1;  // NOLINT

struct LocalArgs {
  std::string file, state_dir, memory = "4GiB", device = "cpu", gpu_memory, test_hooks;
  int workers = 2;
  bool fresh = false;
};

std::atomic<bool> g_interrupted{false};

int run_local(const LocalArgs& a) {
  auto spec = load_job_file(a.file);
  if (!spec.ok()) return report_error(spec.status());
  if (a.workers < 1 || a.workers > 64) return report_error(absl::InvalidArgumentError("--workers must be 1..64"));
  auto mem = parse_byte_size(a.memory);
  if (!mem.ok()) return report_error(annotate(mem.status(), "--memory"));
  auto device = choose_device(a.device);
  if (!device.ok()) return report_error(device.status());
  auto gpu_memory = gpu_memory_budget(a.gpu_memory);
  if (!gpu_memory.ok()) return report_error(gpu_memory.status());
  auto hooks = parse_test_hooks(a.test_hooks);
  if (!hooks.ok()) return report_error(hooks.status());
  const std::string state_dir =
      a.state_dir.empty() ? (std::filesystem::path(".shardpress") / spec->name()).string() : a.state_dir;

  RuntimeOptions ro;
  ro.listen = "127.0.0.1:0";
  ro.core.data_dir = state_dir;
  ro.core.lease_ttl_ms = 10'000;
  ro.core.heartbeat_interval_ms = 1'000;
  ro.owner = "shardpress local";
  SystemClock clock;
  auto rt = CoordinatorRuntime::start(ro, clock);
  if (!rt.ok()) return report_error(rt.status());
  Coordinator& core = (*rt)->core();

  // Same job name in this state dir: carry on with it if the spec is the same one (same
  // digest of the normalized spec), never silently with an edited one.
  auto normalized = core.normalize_spec(*spec);
  if (!normalized.ok()) return report_error(annotate(normalized.status(), a.file));
  auto existing = core.job_status(spec->name(), false);
  if (existing.ok()) {
    auto before = core.normalize_spec(existing->spec());
    const bool same = before.ok() && spec_digest(*before) == spec_digest(*normalized);
    const bool output_gone = existing->state() == SUCCEEDED && !std::filesystem::exists(existing->output_dir());
    if (!same || output_gone) {
      if (!a.fresh) {
        std::string why;
        if (!same) {
          why = fmt::format("was run with a different spec:");
          for (const auto& d : before.ok() ? spec_differences(*before, *normalized)
                                           : std::vector<std::string>{std::string(before.status().message())})
            why += "\n  " + d;
        } else {
          why = fmt::format("succeeded, but its output {} is gone", existing->output_dir());
        }
        return report_error(absl::FailedPreconditionError(fmt::format(
            "{}: job '{}' in {} ({}, {}) {}\nrun again with --fresh to discard that run and start over, or give "
            "this job another name",
            a.file, spec->name(), state_dir, existing->id(), job_state_text(existing->state()), why)));
      }
      // Discard only what the new run can replace: an output folder it may not overwrite
      // stops here, with the earlier run still in the state dir.
      if (!normalized->overwrite() && std::filesystem::exists(normalized->output()))
        return report_error(absl::FailedPreconditionError(fmt::format(
            "{}: output {} already exists; move it away (or set overwrite: true) before --fresh", a.file,
            normalized->output())));
      if (!job_terminal(existing->state())) (void)core.cancel(existing->id());
      if (auto removed = core.delete_job(existing->id()); !removed.ok()) return report_error(removed.status());
      std::fprintf(stderr, "--fresh: discarded %s (%s) from %s\n", existing->id().c_str(),
                   job_state_text(existing->state()).c_str(), state_dir.c_str());
      existing = absl::NotFoundError("discarded");
    }
  }
  std::string job_id;
  if (existing.ok() && existing->state() == SUCCEEDED) {
    std::fprintf(stderr, "%s already succeeded in %s (same spec)\n", existing->id().c_str(), state_dir.c_str());
    std::printf("%s", render_job(*existing, false).c_str());
    (*rt)->stop();
    return kExitOk;
  }
  if (existing.ok()) {
    job_id = existing->id();
    if (job_terminal(existing->state())) {
      auto r = core.resume(job_id);
      if (!r.ok()) return report_error(r.status());
    }
    std::fprintf(stderr, "resuming %s from %s (%u/%u tasks already done)\n", job_id.c_str(), state_dir.c_str(),
                 existing->tasks_done(), existing->tasks_total());
  } else {
    auto s = core.submit(*spec);
    if (!s.ok()) return report_error(s.status());
    job_id = s->id();
    std::fprintf(stderr, "job %s: %s -> %s with %d local worker%s (state in %s)\n", job_id.c_str(),
                 spec->model().c_str(), spec->output().c_str(), a.workers, a.workers == 1 ? "" : "s", state_dir.c_str());
  }

  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> threads;
  for (int i = 0; i < a.workers; ++i) {
    WorkerOptions wo;
    wo.coordinator = (*rt)->address();
    wo.cache_dir = (std::filesystem::path(state_dir) / fmt::format("worker-{}", i)).string();
    wo.memory = *mem;
    wo.device = device->label;
    wo.cuda_device = device->cuda;
    wo.gpu_memory = *gpu_memory;
    wo.verbose = false;
    wo.task_delay_ms = hooks->task_delay_ms;
    auto w = Worker::create(wo);
    if (!w.ok()) return report_error(w.status());
    workers.push_back(std::move(*w));
  }
  for (auto& w : workers) threads.emplace_back([&w] { w->run().IgnoreError(); });

  struct sigaction sa {};
  sa.sa_handler = [](int) { g_interrupted = true; };
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  FollowOptions fo;
  fo.interrupted = [] { return g_interrupted.load(); };
  fo.poll_ms = 50;  // an in-process call: noticing the end sooner costs nothing
  const int rc = follow_job([&] { return core.job_status(job_id, true); }, (*rt)->address(), fo);
  for (auto& w : workers) w->stop();
  for (auto& t : threads) t.join();
  (*rt)->stop();
  if (g_interrupted) {
    std::fprintf(stderr, "interrupted; run the same command again to resume (state in %s)\n", state_dir.c_str());
    return kExitFailed;
  }
  return rc;
}

}  // namespace

void add_local_command(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<LocalArgs>();
  CLI::App* cmd = app.add_subcommand("local", "Run a job on this machine: embedded coordinator + N workers");
  cmd->add_option("JOB_YAML", a->file, "Job spec file")->required();
  cmd->add_option("--workers", a->workers, "Worker count")->capture_default_str();
  cmd->add_option("--state-dir", a->state_dir, "State folder (default .shardpress/<job name>); rerun to resume");
  cmd->add_option("--memory", a->memory, "Memory budget of each worker")->capture_default_str();
  cmd->add_option("--device", a->device, "cpu, auto or cuda:N: where the workers compute (they share the GPU)")
      ->capture_default_str();
  cmd->add_option("--gpu-memory", a->gpu_memory, "Device memory each worker's GPU work may use (default: what is free)");
  cmd->add_option("--test-hooks", a->test_hooks, "")->group("");  // hidden: end-to-end tests only
  cmd->add_flag("--fresh", a->fresh,
                "Discard an earlier run of this job in the state dir (a different spec, or an output since deleted) "
                "and start over");
  cmd->callback([a, exit_code] { *exit_code = run_local(*a); });
}

}  // namespace sp::cli
