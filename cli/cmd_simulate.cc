// shardpress simulate JOB.yaml --workers SPEC: how long a job would take on a lab, with
// the real planner and scheduler against a fake clock (sim/simulator.h). Works on a
// header-only model folder: only config.json and the safetensors headers are read.
//
//   shardpress simulate exaone.yaml --workers 4*gtx1080ti
//   shardpress simulate exaone.yaml --workers 1*gtx1080ti --workers 2*gtx1080ti --modes sequential,pipelined
//   shardpress simulate job.yaml --local --workers 2*cpu      # as `shardpress local --workers 2` here
#include <filesystem>
#include <set>
#include <thread>

#include "cli/commands.h"
#include "cli/output.h"
#include "common/byte_size.h"
#include "fmt/format.h"
#include "formats/model.h"
#include "formats/token_ids.h"
#include "jobs/job_settings.h"
#include "nlohmann/json.hpp"
#include "sim/lab.h"
#include "sim/simulator.h"

namespace sp::cli {
namespace {

using namespace shardpress::v1;  // NOLINT

struct SimulateArgs {
  std::string file;
  std::vector<std::string> workers;
  std::vector<std::string> modes;
  std::vector<int> checkpoint_every;
  std::string coordinator_nic, coordinator_disk, import_mode = "reference", output = "table";
  bool local = false;
  int cores = 0;
};

// The calibration (or evaluation) tokens' shape: the ids file's when it is there, else
// samples x seq_len from the spec (a lab plan made before the text exists).
absl::StatusOr<CalibrationShape> data_shape(const JobSettings& s, const ModelConfig& c) {
  std::string ids;
  int64_t samples = 0, seq_len = 0;
  if (s.calibration) {
    ids = s.calibration->ids, samples = s.calibration->samples, seq_len = s.calibration->seq_len;
  } else if (s.eval) {
    ids = s.eval->ids, samples = s.eval->samples, seq_len = s.eval->seq_len;
  } else {
    return CalibrationShape{};
  }
  std::error_code ec;
  if (!ids.empty() && std::filesystem::exists(ids, ec)) {
    auto batch = read_token_ids(ids, c.vocab_size, samples, seq_len);
    if (!batch.ok()) return batch.status();
    return CalibrationShape{batch->sequences, batch->seq_len};
  }
  if (samples <= 0 || seq_len <= 0)
    return absl::InvalidArgumentError(fmt::format(
        "the token-id file {} is not there: set samples and seq_len in the spec to simulate without it", ids));
  return CalibrationShape{samples, seq_len};
}

struct Row {
  std::string mode, lab, short_lab;
  std::vector<std::string> lab_parts;  // each kind of worker without its count; the coordinator
  sim::SimReport report;
};

std::string minutes(double s) { return s >= 3600 ? fmt::format("{:.2f} h", s / 3600) : s >= 120 ? fmt::format("{:.1f} min", s / 60) : fmt::format("{:.2f} s", s); }

nlohmann::ordered_json to_json(const Row& r) {
  const sim::SimReport& s = r.report;
  nlohmann::ordered_json j;
  j["mode"] = r.mode;
  j["lab"] = r.lab;
  j["wall_s"] = s.wall_s;
  j["import_s"] = s.import_s;
  j["tasks_end_s"] = s.tasks_end_s;
  j["assembly_s"] = s.assembly_s;
  j["tasks"] = s.tasks;
  j["model_bytes"] = s.model_bytes;
  j["output_bytes"] = s.output_bytes;
  j["coordinator_bytes_in"] = s.coordinator_bytes_in;
  j["coordinator_bytes_out"] = s.coordinator_bytes_out;
  j["coordinator_disk_peak"] = s.coordinator_disk_peak;
  nlohmann::ordered_json ws = nlohmann::ordered_json::array();
  for (const auto& w : s.workers)
    ws.push_back({{"id", w.id}, {"device", w.device}, {"tasks", w.tasks}, {"compute_s", w.compute_s},
                  {"transfer_s", w.transfer_s}, {"idle_s", w.idle_s}, {"bytes_in", w.bytes_in},
                  {"bytes_out", w.bytes_out}, {"ram_peak", w.ram_peak}, {"vram_peak", w.vram_peak}});
  j["workers"] = ws;
  j["notes"] = s.notes;
  return j;
}

void print_detail(const Row& r) {
  const sim::SimReport& s = r.report;
  std::printf("lab:        %s\n", r.lab.c_str());
  if (!r.mode.empty()) std::printf("mode:       %s\n", r.mode.c_str());
  std::printf("wall:       %s  (import done at %s, last task done at %s, assembly %s)\n", minutes(s.wall_s).c_str(),
              minutes(s.import_s).c_str(), minutes(s.tasks_end_s).c_str(), minutes(s.assembly_s).c_str());
  std::printf("coordinator link: %s in (results), %s out (inputs)\n", format_bytes(s.coordinator_bytes_in).c_str(),
              format_bytes(s.coordinator_bytes_out).c_str());
  std::printf("coordinator disk peak: %s (model %s, output %s)\n", format_bytes(s.coordinator_disk_peak).c_str(),
              format_bytes(s.model_bytes).c_str(), format_bytes(s.output_bytes).c_str());
  Table t({"WORKER", "DEVICE", "TASKS", "COMPUTE", "TRANSFER", "WAITING", "IN", "OUT", "RAM PEAK", "VRAM PEAK"});
  for (const auto& w : s.workers)
    t.add({w.id, w.device, std::to_string(w.tasks), minutes(w.compute_s), minutes(w.transfer_s), minutes(w.idle_s),
           format_bytes(w.bytes_in), format_bytes(w.bytes_out), format_bytes(w.ram_peak),
           w.vram_peak ? format_bytes(w.vram_peak) : "-"});
  std::printf("\n%s", t.render().c_str());
  for (const auto& n : s.notes) std::printf("note: %s\n", n.c_str());
}

int run_simulate(const SimulateArgs& a) {
  auto spec = load_job_file(a.file);
  if (!spec.ok()) return report_error(spec.status());
  auto model = open_model(spec->model());
  if (!model.ok()) return report_error(model.status());
  if (a.import_mode != "reference" && a.import_mode != "copy")
    return report_error(absl::InvalidArgumentError("--import must be reference or copy"));
  const int cores = a.cores > 0 ? a.cores : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::string> modes = a.modes;
  if (modes.empty()) modes.push_back("");
  std::vector<int> everies = a.checkpoint_every;
  if (everies.empty()) everies.push_back(0);
  if ((!a.modes.empty() || !a.checkpoint_every.empty()) && !spec_needs_calibration(*spec))
    return report_error(absl::InvalidArgumentError(
        "--modes and --checkpoint-every: this job is not calibrated (no GPTQ, Wanda or SparseGPT)"));
  std::vector<Row> rows;
  std::vector<std::string> skipped;
  for (const std::string& mode : modes)
    for (const int every : everies) {
      JobSpec s = *spec;
      if (!mode.empty()) s.mutable_calibrate()->set_mode(mode);
      if (every > 0) s.mutable_calibrate()->set_checkpoint_every(every);
      if (every > 1 && s.calibrate().mode() == "pipelined") {  // refused for jobs: each boundary goes to others
        skipped.push_back(fmt::format("pipelined with checkpoint_every {} not simulated: a pipelined job uploads every "
                                      "boundary",
                                      every));
        continue;
      }
      auto settings = job_settings(s);
      if (!settings.ok()) {
        const bool flags = !mode.empty() || every > 0;
        return report_error(annotate(settings.status(), flags ? "--modes/--checkpoint-every" : a.file));
      }
      auto data = data_shape(*settings, model->desc.config);
      if (!data.ok()) return report_error(data.status());
      for (const std::string& w : a.workers) {
        auto lab = sim::parse_lab(w, a.coordinator_nic, a.coordinator_disk, a.local, cores);
        if (!lab.ok()) return report_error(lab.status());
        lab->copy_import = a.import_mode == "copy";
        auto r = sim::simulate(model->desc, s, *settings, *data, *lab);
        if (!r.ok()) return report_error(annotate(r.status(), sim::describe_lab(*lab)));
        std::string shown_mode =
            settings->calibration ? (settings->calibration->pipelined ? "pipelined" : "sequential") : "";
        if (settings->calibration && settings->calibration->checkpoint_every > 1)
          shown_mode += fmt::format(", checkpoint_every {}", settings->calibration->checkpoint_every);
        rows.push_back({shown_mode, sim::describe_lab(*lab), sim::short_lab(*lab), sim::lab_parts(*lab), std::move(*r)});
      }
    }
  if (rows.empty())
    return report_error(absl::InvalidArgumentError(fmt::format("nothing to simulate: {}", fmt::join(skipped, "; "))));
  if (a.output == "json") {
    nlohmann::ordered_json j;
    j["job"] = describe_spec(*spec);
    j["model"] = spec->model();
    nlohmann::ordered_json runs = nlohmann::ordered_json::array();
    for (const auto& r : rows) runs.push_back(to_json(r));
    j["runs"] = runs;
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::printf("job:        %s\nmodel:      %s (%s)\n", describe_spec(*spec).c_str(), spec->model().c_str(),
              format_bytes(rows.front().report.model_bytes).c_str());
  if (rows.size() == 1) {
    print_detail(rows.front());
    for (const auto& n : skipped) std::printf("note: %s\n", n.c_str());
  } else {
    Table t({"MODE", "WORKERS", "WALL", "COMPUTE (SUM)", "TRANSFER (SUM)", "WAITING (SUM)", "COORD IN", "COORD OUT",
             "DISK PEAK", "RAM PEAK"});
    for (const auto& r : rows) {
      double compute = 0, transfer = 0, idle = 0;
      uint64_t ram = 0;
      for (const auto& w : r.report.workers) {
        compute += w.compute_s, transfer += w.transfer_s, idle += w.idle_s;
        ram = std::max(ram, w.ram_peak);
      }
      t.add({r.mode.empty() ? "-" : r.mode, r.short_lab, minutes(r.report.wall_s), minutes(compute), minutes(transfer),
             minutes(idle), format_bytes(r.report.coordinator_bytes_in), format_bytes(r.report.coordinator_bytes_out),
             format_bytes(r.report.coordinator_disk_peak), format_bytes(ram)});
    }
    // Each worker kind and the coordinator once (rows differ in counts).
    std::set<std::string> labs;
    for (const auto& r : rows)
      for (const auto& part : r.lab_parts)
        if (labs.insert(part).second) std::printf("lab:        %s\n", part.c_str());
    std::printf("\n%s", t.render().c_str());
    std::set<std::string> notes(skipped.begin(), skipped.end());
    for (const auto& r : rows) notes.insert(r.report.notes.begin(), r.report.notes.end());
    for (const auto& n : notes) std::printf("note: %s\n", n.c_str());
  }
  return kExitOk;
}

}  // namespace

void add_simulate_command(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<SimulateArgs>();
  CLI::App* cmd = app.add_subcommand(
      "simulate", "Project a job's wall time, transfers, disk and memory on a lab (the real planner and scheduler)");
  cmd->add_option("JOB_YAML", a->file, "Job spec file (the model folder may hold only config.json + headers)")
      ->required();
  cmd->add_option("--workers", a->workers,
                  "Lab: GROUP[+GROUP...], GROUP = [N*]cpu|gtx1080ti[:ram=32GiB][:vram=11GiB][:nic=1GbE][:disk=500MB/s]"
                  "[:source=yes|no]; repeat the flag to compare labs")
      ->required();
  cmd->add_option("--modes", a->modes, "Calibrated jobs: simulate each of sequential, pipelined")
      ->delimiter(',')
      ->check(CLI::IsMember({"sequential", "pipelined"}));
  cmd->add_option("--checkpoint-every", a->checkpoint_every,
                  "Sequential calibrated jobs: simulate each of these calibrate.checkpoint_every values (e.g. 1,8)")
      ->delimiter(',')
      ->check(CLI::Range(1, 100'000));
  cmd->add_option("--coordinator-nic", a->coordinator_nic, "The coordinator's link (default 1GbE = 110 MB/s)");
  cmd->add_option("--coordinator-disk", a->coordinator_disk, "The coordinator's disk (default 500MB/s)");
  cmd->add_option("--import", a->import_mode, "reference (default) or copy, as the coordinator's --import");
  cmd->add_flag("--local", a->local, "Everything on this machine, as `shardpress local` (loopback, shared cores)");
  cmd->add_option("--cores", a->cores, "--local: the machine's cores (default: this machine's)");
  cmd->add_option("-o,--output", a->output, "table or json")->check(CLI::IsMember({"table", "json"}));
  cmd->callback([a, exit_code] { *exit_code = run_simulate(*a); });
}

}  // namespace sp::cli
