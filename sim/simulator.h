// `shardpress simulate`: a job run on a modelled lab, with the real planner (plan_job),
// the real task records (TaskScheduler::created_by_import), the real lease choice
// (TaskScheduler::choose_lease with Affinity) and completion (completion, promotions)
// against a FakeClock. What is modelled instead of run: the ops' compute time
// (sim/task_cost.h), transfers and disk as fair-shared links, and the job system's fixed
// costs (polls, RPCs, commits; constants in simulator.cc, measured on this machine). The
// workers behave as worker/worker.cc: one task computing, the next leased and fetched
// beside it when both fit the memory budget, a 200 ms poll when idle, a cache of what
// they fetched or made.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "formats/model_layout.h"
#include "jobs/job_settings.h"
#include "ops/task_memory.h"
#include "shardpress.pb.h"
#include "sim/lab.h"

namespace sp::sim {

struct WorkerReport {
  std::string id, device;
  int tasks = 0;
  double compute_s = 0;   // computing a task
  double transfer_s = 0;  // fetching inputs, reading the source, uploading results
  double idle_s = 0;      // holding no task: waiting for one to become leasable
  uint64_t bytes_in = 0, bytes_out = 0;  // over its link (fetches; uploads)
  uint64_t ram_peak = 0;   // task memory estimates held at once (the one computing + the one prefetched)
  uint64_t vram_peak = 0;  // device memory of its GPU tasks
};

struct SimReport {
  double wall_s = 0;
  double import_s = 0;    // until the last shard was imported
  double tasks_end_s = 0; // when the last task was done
  double assembly_s = 0;  // from the last task done to the output published (the rest of its writing)
  int tasks = 0;
  uint64_t coordinator_bytes_in = 0, coordinator_bytes_out = 0;
  uint64_t coordinator_disk_peak = 0;  // results + live activations (+ a copy of the model) + the output
  uint64_t output_bytes = 0;
  uint64_t model_bytes = 0;
  std::vector<WorkerReport> workers;
  std::vector<std::string> notes;  // what the reader should know (a forward that runs on the CPU, ...)
};

// Runs `spec` (validated into `settings`) on `model` with `data` calibration/evaluation
// tokens on `lab`. FAILED_PRECONDITION when the job cannot finish there (a task that no
// worker's memory fits), naming the task and the memory it needs.
absl::StatusOr<SimReport> simulate(const ModelDescription& model, const shardpress::v1::JobSpec& spec,
                                   const JobSettings& settings, CalibrationShape data, const LabModel& lab);

}  // namespace sp::sim
