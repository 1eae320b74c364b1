// The commands that talk to a coordinator: submit, status, watch, list, cancel, resume,
// workers, events.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/coordinator_api.h"
#include "cli/follow.h"
#include "cli/job_view.h"
#include "cli/output.h"
#include "common/file_util.h"
#include "jobs/job_yaml.h"
#include "proto/credentials.h"
#include "fmt/format.h"

namespace sp::cli {

using namespace shardpress::v1;  // NOLINT

absl::StatusOr<JobSpec> load_job_file(const std::string& path) {
  SP_ASSIGN_OR_RETURN(std::string text, read_file(path));
  SP_ASSIGN_OR_RETURN(JobSpec spec, parse_job_yaml(text, path));
  make_paths_absolute(spec);
  return spec;
}

void make_paths_absolute(JobSpec& spec) {
  // Paths in the file are relative to the current folder; the coordinator gets them whole.
  auto absolute = [](const std::string& p) { return std::filesystem::absolute(p).lexically_normal().string(); };
  spec.set_model(absolute(spec.model()));
  spec.set_output(absolute(spec.output()));
  if (!spec.calibrate().ids().empty()) spec.mutable_calibrate()->set_ids(absolute(spec.calibrate().ids()));
  if (!spec.evaluate().ids().empty()) spec.mutable_evaluate()->set_ids(absolute(spec.evaluate().ids()));
  if (!spec.evaluate().choices().empty()) spec.mutable_evaluate()->set_choices(absolute(spec.evaluate().choices()));
  if (!spec.quantize().imatrix().empty()) spec.mutable_quantize()->set_imatrix(absolute(spec.quantize().imatrix()));
}

namespace {

struct JobArgs {
  std::string job;
  std::string file;
  std::string output = "table";
  bool wait = false;
};

CLI::App* add_output_flag(CLI::App* cmd, JobArgs* a) {
  cmd->add_option("-o,--output", a->output, "table or json")->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  return cmd;
}

int print_status(const absl::StatusOr<JobStatus>& s, const JobArgs& a, const std::string& addr) {
  if (!s.ok()) return report_rpc_error(s.status(), addr);
  std::printf("%s", a.output == "json" ? (to_json(*s) + "\n").c_str() : render_job(*s, true).c_str());
  return kExitOk;
}

// All jobs, as a table or JSON (`status` without a job, and `list`).
int print_jobs(CoordinatorApiClient& c, const JobArgs& a) {
  auto jobs = c.list();
  if (!jobs.ok()) return report_rpc_error(jobs.status(), c.address());
  if (a.output == "json") {
    ListJobsResponse r;
    for (auto& j : *jobs) *r.add_jobs() = j;
    std::printf("%s\n", to_json(r).c_str());
  } else {
    std::printf("%s", render_jobs_table(*jobs).c_str());
  }
  return kExitOk;
}

}  // namespace

absl::StatusOr<CoordinatorApiClient> connect_coordinator(const ConnectionFlags& conn) {
  // A token or certificate file that cannot be read (or a token too short to be one)
  // stops the command here: nothing is sent without the credentials the user meant.
  SP_ASSIGN_OR_RETURN(std::string token, client_token(conn.token_file));
  SP_ASSIGN_OR_RETURN(auto credentials, channel_credentials({conn.tls_ca, conn.tls_cert, conn.tls_key}));
  return CoordinatorApiClient(coordinator_address(conn.coordinator), token, credentials);
}

int with_coordinator(const ConnectionFlags& conn, const std::function<int(CoordinatorApiClient&)>& body) {
  auto c = connect_coordinator(conn);
  if (!c.ok()) return report_error(c.status());
  return body(*c);
}

namespace {

// Follows job `id` to its end; the final view as JSON with -o json.
int follow(CoordinatorApiClient& c, const std::string& id, const JobArgs& a) {
  FollowOptions fo;
  fo.json = a.output == "json";
  return follow_job([&c, id] { return c.get(id); }, c.address(), fo);
}

}  // namespace

void add_job_commands(CLI::App& app, const ConnectionFlags* conn, int* exit_code) {
  auto a = std::make_shared<JobArgs>();
  // Each command: connect (or stop at a bad token/TLS file), then talk to the coordinator.
  auto run = [a, conn, exit_code](int (*body)(CoordinatorApiClient&, const JobArgs&)) {
    return [a, conn, exit_code, body] {
      *exit_code = with_coordinator(*conn, [&](CoordinatorApiClient& c) { return body(c, *a); });
    };
  };

  CLI::App* submit = app.add_subcommand("submit", "Submit a job (YAML spec) to the coordinator");
  submit->add_option("JOB_YAML", a->file, "Job spec file")->required();
  submit->add_flag("--wait", a->wait, "Follow the job until it ends (exit 0 succeeded, 1 failed)");
  add_output_flag(submit, a.get());
  submit->callback([a, conn, exit_code] {
    auto spec = load_job_file(a->file);
    if (!spec.ok()) {
      *exit_code = report_error(spec.status());
      return;
    }
    *exit_code = with_coordinator(*conn, [&](CoordinatorApiClient& c) {
      auto s = c.submit(*spec);
      if (!s.ok() || !a->wait) return print_status(s, *a, c.address());
      std::fprintf(stderr, "submitted %s\n", s->id().c_str());
      return follow(c, s->id(), *a);
    });
  });

  CLI::App* status = app.add_subcommand("status", "Show a job (progress, tasks, workers) or all jobs");
  status->add_option("JOB", a->job, "Job id or name (default: all jobs)");
  add_output_flag(status, a.get());
  status->callback(run([](CoordinatorApiClient& c, const JobArgs& a) {
    return a.job.empty() ? print_jobs(c, a) : print_status(c.get(a.job), a, c.address());
  }));

  CLI::App* list = app.add_subcommand("list", "List jobs");
  add_output_flag(list, a.get());
  list->callback(run([](CoordinatorApiClient& c, const JobArgs& a) { return print_jobs(c, a); }));

  CLI::App* watch = app.add_subcommand("watch", "Follow a job live until it ends");
  watch->add_option("JOB", a->job, "Job id or name")->required();
  add_output_flag(watch, a.get());
  watch->callback(run([](CoordinatorApiClient& c, const JobArgs& a) { return follow(c, a.job, a); }));

  CLI::App* cancel = app.add_subcommand("cancel", "Cancel a job (finished tasks are kept for resume)");
  cancel->add_option("JOB", a->job, "Job id or name")->required();
  add_output_flag(cancel, a.get());
  cancel->callback(
      run([](CoordinatorApiClient& c, const JobArgs& a) { return print_status(c.cancel(a.job), a, c.address()); }));

  CLI::App* resume = app.add_subcommand("resume", "Resume a cancelled or failed job, reusing finished tasks");
  resume->add_option("JOB", a->job, "Job id or name")->required();
  resume->add_flag("--wait", a->wait, "Follow the job until it ends");
  add_output_flag(resume, a.get());
  resume->callback(run([](CoordinatorApiClient& c, const JobArgs& a) {
    auto s = c.resume(a.job);
    if (!s.ok() || !a.wait) return print_status(s, a, c.address());
    return follow(c, s->id(), a);
  }));

  CLI::App* del = app.add_subcommand(
      "delete", "Delete a finished or cancelled job: its records and every blob only it owned (the output stays)");
  del->add_option("JOB", a->job, "Job id or name")->required();
  add_output_flag(del, a.get());
  del->callback(run([](CoordinatorApiClient& c, const JobArgs& a) {
    auto s = c.remove(a.job);
    if (!s.ok()) return report_rpc_error(s.status(), c.address());
    if (a.output == "json") {
      std::printf("%s\n", to_json(*s).c_str());
    } else {
      std::fprintf(stderr, "deleted %s (%s)\n", s->id().c_str(), s->spec().name().c_str());
    }
    return static_cast<int>(kExitOk);
  }));

  CLI::App* workers = app.add_subcommand("workers", "List workers: device, memory, liveness, tasks held");
  add_output_flag(workers, a.get());
  workers->callback(run([](CoordinatorApiClient& c, const JobArgs& a) {
    auto w = c.workers();
    if (!w.ok()) return report_rpc_error(w.status(), c.address());
    ListWorkersResponse r;
    for (auto& x : *w) *r.add_workers() = x;
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();
    std::printf("%s", a.output == "json" ? (to_json(r) + "\n").c_str() : render_workers(*w, now).c_str());
    return static_cast<int>(kExitOk);
  }));

  CLI::App* events = app.add_subcommand("events", "Show a job's event log");
  events->add_option("JOB", a->job, "Job id or name")->required();
  add_output_flag(events, a.get());
  events->callback(run([](CoordinatorApiClient& c, const JobArgs& a) {
    auto ev = c.events(a.job);
    if (!ev.ok()) return report_rpc_error(ev.status(), c.address());
    ListEventsResponse r;
    for (auto& e : *ev) *r.add_events() = e;
    if (a.output == "json") {
      std::printf("%s\n", to_json(r).c_str());
      return static_cast<int>(kExitOk);
    }
    for (const auto& e : *ev) {
      const std::time_t t = e.time_ms() / 1000;
      char buf[32];
      std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
      std::printf("%s.%03d  %s\n", buf, static_cast<int>(e.time_ms() % 1000), e.message().c_str());
    }
    return static_cast<int>(kExitOk);
  }));
}

}  // namespace sp::cli
