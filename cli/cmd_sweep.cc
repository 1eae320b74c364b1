// shardpress sweep SWEEP.yaml [--dry-run] [--wait] [--cancel]: a sweep's variants
// (jobs/sweep_spec) as jobs on the coordinator, named SWEEP.LABEL. Run again, it resumes:
// missing jobs are submitted, failed or cancelled ones resumed, the others kept; a job
// whose settings differ from its variant's is refused, naming what differs.
// shardpress report SWEEP.yaml|SWEEP [-o table|json|csv] [--plot FILE.svg]: the
// comparison (jobs/sweep_report).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <thread>

#include "cli/commands.h"
#include "cli/coordinator_api.h"
#include "cli/output.h"
#include "jobs/sweep_report.h"
#include "common/file_util.h"
#include "fmt/format.h"
#include "jobs/job_settings.h"
#include "jobs/sweep_spec.h"
#include "proto/job_state.h"

namespace sp::cli {
namespace {

using namespace shardpress::v1;  // NOLINT

struct SweepArgs {
  std::string file;
  bool dry_run = false, wait = false, cancel = false;
  std::string output = "table";
  std::string plot;
};

absl::StatusOr<SweepSpec> load_sweep(const std::string& path) {
  SP_ASSIGN_OR_RETURN(const std::string text, read_file(path));
  SP_ASSIGN_OR_RETURN(SweepSpec s, parse_sweep_yaml(text, path));
  for (auto& v : s.variants) make_paths_absolute(v.spec);
  return s;
}

// What differs between a variant's spec and its existing job's, paths aside (the
// coordinator stores them resolved).
std::vector<std::string> setting_differences(JobSpec a, JobSpec b) {
  for (JobSpec* s : {&a, &b}) {
    s->clear_model();
    s->clear_output();
    s->mutable_calibrate()->clear_ids();
    s->mutable_evaluate()->clear_ids();
    s->mutable_evaluate()->clear_choices();
    s->mutable_quantize()->clear_imatrix();
  }
  return spec_differences(a, b);
}

std::map<std::string, JobStatus> jobs_by_name(CoordinatorApiClient& c, absl::Status* error) {
  std::map<std::string, JobStatus> out;
  auto all = c.list();
  if (!all.ok()) {
    *error = all.status();
    return out;
  }
  for (auto& j : *all) out[j.spec().name()] = std::move(j);
  return out;
}

int run_sweep(const SweepArgs& a, CoordinatorApiClient& c) {
  auto sweep = load_sweep(a.file);
  if (!sweep.ok()) return report_error(sweep.status());
  absl::Status err;
  auto existing = jobs_by_name(c, &err);
  if (!err.ok()) return report_rpc_error(err, c.address());
  int failures = 0;
  for (const auto& v : sweep->variants) {
    const std::string name = v.spec.name();
    auto it = existing.find(name);
    std::string what;
    if (a.cancel) {
      if (it == existing.end() || job_terminal(it->second.state())) continue;
      auto r = c.cancel(name);
      what = r.ok() ? "cancelled" : fmt::format("not cancelled: {}", std::string(r.status().message()));
    } else if (it == existing.end()) {
      auto r = c.submit(v.spec);
      if (!r.ok()) {
        ++failures;
        what = fmt::format("NOT SUBMITTED: {}", std::string(r.status().message()));
      } else {
        what = fmt::format("submitted {}", r->id());
      }
    } else if (const auto diff = setting_differences(it->second.spec(), v.spec); !diff.empty()) {
      ++failures;
      std::string d;
      for (const auto& line : diff) d += (d.empty() ? "" : "; ") + line;
      what = fmt::format("REFUSED: job {} has other settings ({}): delete it or rename the sweep", it->second.id(), d);
    } else if (it->second.state() == FAILED || it->second.state() == CANCELLED) {
      auto r = c.resume(name);
      what = r.ok() ? fmt::format("resumed {}", r->id())
                    : fmt::format("{} ({})", job_state_name(it->second.state()), std::string(r.status().message()));
    } else {
      what = fmt::format("kept {} ({})", it->second.id(), job_state_name(it->second.state()));
    }
    std::printf("%-40s %s\n", name.c_str(), what.c_str());
    std::fflush(stdout);
  }
  if (failures > 0) return kExitBadInput;
  if (!a.wait || a.cancel) return kExitOk;
  // Follow until every variant has ended (the user stops it with Ctrl-C; jobs run on).
  size_t last = SIZE_MAX;
  for (;;) {
    existing = jobs_by_name(c, &err);
    if (!err.ok()) return report_rpc_error(err, c.address());
    size_t ended = 0, succeeded = 0;
    for (const auto& v : sweep->variants) {
      auto it = existing.find(v.spec.name());
      if (it != existing.end() && job_terminal(it->second.state())) {
        ++ended;
        succeeded += it->second.state() == SUCCEEDED;
      }
    }
    if (ended != last) std::fprintf(stderr, "sweep %s: %zu/%zu variants ended\n", sweep->name.c_str(), ended, sweep->variants.size());
    last = ended;
    if (ended == sweep->variants.size()) return succeeded == ended ? kExitOk : kExitFailed;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

int print_expansion(const SweepArgs& a) {
  auto sweep = load_sweep(a.file);
  if (!sweep.ok()) return report_error(sweep.status());
  for (const auto& v : sweep->variants)
    std::printf("%-40s %-48s %s\n", v.spec.name().c_str(), v.spec.output().c_str(), describe_spec(v.spec).c_str());
  std::printf("%zu variants\n", sweep->variants.size());
  return kExitOk;
}

int run_report(const SweepArgs& a, CoordinatorApiClient& c) {
  // The variants: from the sweep file, or the jobs named SWEEP.* on the coordinator.
  std::string sweep_name = a.file;
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> variants;  // name, settings
  std::error_code ec;
  if (std::filesystem::is_regular_file(a.file, ec)) {
    auto sweep = load_sweep(a.file);
    if (!sweep.ok()) return report_error(sweep.status());
    sweep_name = sweep->name;
    for (const auto& v : sweep->variants) variants.push_back({v.spec.name(), v.settings});
  } else {
    absl::Status err;
    for (const auto& [name, j] : jobs_by_name(c, &err))
      if (name.rfind(a.file + ".", 0) == 0 && j.evaluates().empty()) variants.push_back({name, {}});
    if (!err.ok()) return report_rpc_error(err, c.address());
    if (variants.empty())
      return report_error(absl::NotFoundError(fmt::format("no sweep file or jobs named '{}.*'", a.file)));
  }
  std::vector<ReportRow> rows;
  size_t cached = 0, evaluated = 0, cached_choices = 0, evaluated_choices = 0, statistics_taken = 0;
  for (const auto& [name, settings] : variants) {
    const std::string label = name.substr(sweep_name.size() + 1);
    auto s = c.get(name);
    if (!s.ok()) {
      ReportRow missing;
      missing.label = label;
      missing.settings = settings;
      missing.state = "MISSING";
      rows.push_back(missing);
      continue;
    }
    ReportRow r = report_row(*s, label);
    r.settings = settings;
    if (s->evaluation().done()) {
      ++evaluated;
      cached += s->evaluation().original_cached();
      if (!s->spec().evaluate().choices().empty()) {
        ++evaluated_choices;
        cached_choices += s->evaluation().original_choices_cached();
      }
    }
    for (const auto& t : s->tasks()) statistics_taken += t.state() == DONE && !t.statistics_from().empty();
    rows.push_back(std::move(r));
  }
  if (a.output == "json") {
    std::printf("%s", report_json(sweep_name, rows).c_str());
  } else if (a.output == "csv") {
    std::printf("%s", report_csv(rows).c_str());
  } else {
    std::printf("%s", report_table(rows).c_str());
    if (evaluated > 0)
      std::printf("shared: the original model was evaluated once; %zu of %zu evaluated variants took its perplexity "
                  "from the cache%s\n",
                  cached, evaluated,
                  evaluated_choices > 0
                      ? fmt::format(", {} of {} its accuracy", cached_choices, evaluated_choices).c_str()
                      : "");
    if (statistics_taken > 0)
      std::printf("shared: %zu calibration task%s took the dense statistics another variant computed on the same "
                  "layer and activations (their dense pass did not run)\n",
                  statistics_taken, statistics_taken == 1 ? "" : "s");
  }
  const std::string plot = a.plot.empty() ? sweep_name + ".svg" : a.plot;
  if (auto st = write_file_atomic(plot, report_svg(sweep_name, rows)); !st.ok()) return report_error(st);
  std::fprintf(stderr, "plot: %s\n", plot.c_str());
  return kExitOk;
}

}  // namespace

void add_sweep_commands(CLI::App& app, const ConnectionFlags* conn, int* exit_code) {
  auto a = std::make_shared<SweepArgs>();
  CLI::App* sweep = app.add_subcommand("sweep", "Submit a sweep (a base job and settings to vary) as jobs; run again "
                                                "to resume it");
  sweep->add_option("SWEEP_YAML", a->file, "Sweep file")->required();
  sweep->add_flag("--dry-run", a->dry_run, "Print the variants (job, output, settings) and submit nothing");
  sweep->add_flag("--wait", a->wait, "Follow until every variant ends (exit 0: all succeeded, 1: one did not)");
  sweep->add_flag("--cancel", a->cancel, "Cancel the sweep's unfinished jobs");
  sweep->callback([a, conn, exit_code] {
    if (a->dry_run) {
      *exit_code = print_expansion(*a);
      return;
    }
    *exit_code = with_coordinator(*conn, [&](CoordinatorApiClient& c) { return run_sweep(*a, c); });
  });
  CLI::App* report = app.add_subcommand("report", "Compare a sweep's variants: size, bits per weight, perplexity, "
                                                  "time; writes an SVG plot with the Pareto front");
  report->add_option("SWEEP", a->file, "Sweep file, or the sweep's name")->required();
  report->add_option("-o,--output", a->output, "table, json or csv")
      ->check(CLI::IsMember({"table", "json", "csv"}))
      ->capture_default_str();
  report->add_option("--plot", a->plot, "Where the SVG plot goes (default: NAME.svg here)");
  report->callback([a, conn, exit_code] {
    *exit_code = with_coordinator(*conn, [&](CoordinatorApiClient& c) { return run_report(*a, c); });
  });
}

}  // namespace sp::cli
