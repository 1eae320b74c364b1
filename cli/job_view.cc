#include "cli/job_view.h"

#include <google/protobuf/util/json_util.h>

#include "cli/output.h"
#include "common/byte_size.h"
#include "fmt/format.h"

namespace sp::cli {

using namespace shardpress::v1;  // NOLINT

std::string state_text(JobState s) {
  switch (s) {
    case QUEUED: return "QUEUED";
    case RUNNING: return "RUNNING";
    case ASSEMBLING: return "ASSEMBLING";
    case SUCCEEDED: return "SUCCEEDED";
    case FAILED: return "FAILED";
    case CANCELLED: return "CANCELLED";
    default: return "?";
  }
}

std::string task_state_text(TaskState s) {
  switch (s) {
    case WAITING: return "waiting";
    case READY: return "ready";
    case LEASED: return "running";
    case DONE: return "done";
    case TASK_FAILED: return "failed";
    default: return "?";
  }
}

bool job_finished(JobState s) { return s == SUCCEEDED || s == FAILED || s == CANCELLED; }

namespace {

std::string duration_text(double s) {
  if (s < 60) return fmt::format("{:.1f} s", s);
  if (s < 3600) return fmt::format("{}m{:02d}s", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  return fmt::format("{}h{:02d}m", static_cast<int>(s) / 3600, (static_cast<int>(s) / 60) % 60);
}

std::string progress_text(const JobStatus& j) {
  const int width = 24;
  const double frac = j.bytes_total() ? static_cast<double>(j.bytes_done()) / j.bytes_total() : 0.0;
  const int filled = static_cast<int>(frac * width);
  std::string s = fmt::format("[{}{}] {}/{} tasks, {} of {}", std::string(filled, '#'), std::string(width - filled, '.'),
                              j.tasks_done(), j.tasks_total(), format_bytes(j.bytes_done()), format_bytes(j.bytes_total()));
  const int64_t end = j.finished_ms() ? j.finished_ms() : j.now_ms();
  if (j.started_ms() > 0 && end > j.started_ms()) {
    const double secs = (end - j.started_ms()) / 1000.0;
    const double rate = j.bytes_done() / secs;
    s += fmt::format(", {}/s", format_bytes(static_cast<uint64_t>(rate)));
    if (!job_finished(j.state()) && rate > 0 && j.bytes_done() < j.bytes_total())
      s += ", ETA " + duration_text((j.bytes_total() - j.bytes_done()) / rate);
    s += ", elapsed " + duration_text(secs);
  }
  return s;
}

}  // namespace

std::string render_job(const JobStatus& j, bool tasks) {
  std::string out;
  out += fmt::format("job       {} ({})  {}  {}\n", j.id(), j.spec().name(), state_text(j.state()), j.phase());
  out += fmt::format("model     {}\n", j.model_dir());
  if (!j.output_dir().empty()) out += fmt::format("output    {}\n", j.output_dir());
  if (!j.spec().eval().ids().empty()) out += fmt::format("eval      {}\n", j.spec().eval().ids());
  if (j.predictions() > 0)
    out += fmt::format("result    perplexity {:.4f} (mean NLL {:.6f} over {} predictions)\n", j.perplexity(), j.mean_nll(),
                       j.predictions());
  if (!j.error().empty()) out += fmt::format("error     {}\n", j.error());
  out += fmt::format("progress  {}\n", progress_text(j));
  if (tasks && j.tasks_size() > 0) {
    Table t({"TASK", "STATE", "ATTEMPT", "WORKER", "INPUT", "TIME"});
    for (const auto& ts : j.tasks()) {
      std::string time;
      if (ts.finished_ms() > ts.started_ms() && ts.state() == DONE)
        time = duration_text((ts.finished_ms() - ts.started_ms()) / 1000.0);
      else if (ts.state() == LEASED)
        time = duration_text((j.now_ms() - ts.started_ms()) / 1000.0) + " so far";
      // The task's own name ("layer.3", "fwd.3"): a pipelined layer has two tasks.
      const std::string name = ts.id().substr(ts.id().rfind('/') + 1);
      t.add({name, task_state_text(ts.state()), std::to_string(ts.attempt()), ts.worker_id(),
             format_bytes(ts.input_bytes()), time});
    }
    out += "\n" + t.render();
  }
  return out;
}

std::string render_job_line(const JobStatus& j) {
  return fmt::format("{} {} {} {}", j.id(), state_text(j.state()), j.phase(), progress_text(j));
}

std::string render_jobs_table(const std::vector<JobStatus>& jobs) {
  Table t({"JOB", "NAME", "STATE", "LAYERS", "OUTPUT"});
  for (const auto& j : jobs)
    t.add({j.id(), j.spec().name(), state_text(j.state()), fmt::format("{}/{}", j.tasks_done(), j.tasks_total()),
           j.output_dir()});
  return t.render();
}

std::string render_workers(const std::vector<WorkerInfo>& workers, int64_t now_ms) {
  Table t({"WORKER", "HOST", "DEVICE", "MEMORY", "ALIVE", "LAST SEEN", "TASKS"});
  for (const auto& w : workers) {
    std::string tasks;
    for (const auto& id : w.tasks()) tasks += (tasks.empty() ? "" : ",") + id;
    t.add({w.id(), w.host(), w.device(), format_bytes(w.memory()), w.alive() ? "yes" : "no",
           w.last_seen_ms() ? duration_text((now_ms - w.last_seen_ms()) / 1000.0) + " ago" : "never",
           tasks.empty() ? "-" : tasks});
  }
  return t.render();
}

std::string to_json(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = true;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

}  // namespace sp::cli
