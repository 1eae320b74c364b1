#include "cli/job_view.h"

#include <algorithm>

#include "cli/output.h"
#include "common/byte_size.h"
#include "fmt/format.h"

namespace sp::cli {

using namespace shardpress::v1;  // NOLINT

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
  // While the job is still being imported, its tasks are still being planned: the totals
  // are what is planned so far, and an ETA from them would be too short.
  const bool planning = !j.imported() && !job_terminal(j.state());
  std::string s = fmt::format("[{}{}] {}/{} tasks{}, {} of {}", std::string(filled, '#'), std::string(width - filled, '.'),
                              j.tasks_done(), j.tasks_total(), planning ? " planned so far" : "",
                              format_bytes(j.bytes_done()), format_bytes(j.bytes_total()));
  const int64_t end = j.finished_ms() ? j.finished_ms() : j.now_ms();
  if (j.started_ms() > 0 && end > j.started_ms()) {
    const double secs = (end - j.started_ms()) / 1000.0;
    const double rate = j.bytes_done() / secs;
    s += fmt::format(", {}/s", format_bytes(static_cast<uint64_t>(rate)));
    if (planning)
      s += ", ETA once imported";
    else if (!job_terminal(j.state()) && rate > 0 && j.bytes_done() < j.bytes_total())
      s += ", ETA " + duration_text((j.bytes_total() - j.bytes_done()) / rate);
    s += ", elapsed " + duration_text(secs);
  }
  return s;
}

// A task's error, on one line and short enough for a table cell.
std::string error_cell(const std::string& e) {
  std::string one = e.substr(0, e.find('\n'));
  constexpr size_t kMax = 72;
  if (one.size() > kMax) one = one.substr(0, kMax - 3) + "...";
  return one.empty() ? "-" : one;
}

// "original 4.7149 (job-0005) | output 4.9792 (job-0006) | +0.2643, gate +0.3: passed".
std::string render_evaluation(const JobStatus& j) {
  const Evaluation& e = j.evaluation();
  auto ppl = [](double p) { return p > 0 ? fmt::format("{:.4f}", p) : std::string("pending"); };
  std::string line = j.spec().evaluate().ids().empty()
                         ? std::string("evaluate  (no perplexity asked)")
                         : fmt::format("evaluate  original {} ({}) | output {} ({})", ppl(e.original_perplexity()),
                                       e.original_cached() ? "cached" : e.original_job(), ppl(e.perplexity()),
                                       e.output_job());
  if (e.original_perplexity() > 0 && e.perplexity() > 0)
    line += fmt::format(" | {:+.4f}", e.perplexity() - e.original_perplexity());
  if (j.spec().evaluate().has_max_ppl_increase()) line += fmt::format(", gate +{:g}", j.spec().evaluate().max_ppl_increase());
  if (e.done()) line += e.passed() ? ": passed" : ": FAILED";
  line += "\n";
  if (!j.spec().evaluate().choices().empty()) {
    auto acc = [](const shardpress::v1::ChoiceScore& c) {
      return c.items() > 0 ? fmt::format("{:.4f} +- {:.4f}", c.acc(), c.acc_stderr()) : std::string("pending");
    };
    line += fmt::format("          accuracy original {} ({}) | output {} ({})", acc(e.original_choice_score()),
                        e.original_choices_cached() ? "cached" : e.original_choices_job(), acc(e.choice_score()),
                        e.output_choices_job());
    if (e.original_choice_score().items() > 0 && e.choice_score().items() > 0)
      line += fmt::format(" | {:+.4f}", e.choice_score().acc() - e.original_choice_score().acc());
    if (j.spec().evaluate().has_max_acc_decrease())
      line += fmt::format(", gate -{:g}", j.spec().evaluate().max_acc_decrease());
    line += "\n";
  }
  return line;
}

}  // namespace

std::string render_job(const JobStatus& j, bool tasks, int max_lines) {
  std::string out;
  out += fmt::format("job       {} ({})  {}  {}\n", j.id(), j.spec().name(), job_state_text(j.state()), j.phase());
  out += fmt::format("model     {}\n", j.model_dir());
  if (!j.output_dir().empty()) out += fmt::format("output    {}\n", j.output_dir());
  if (!j.spec().eval().ids().empty()) out += fmt::format("eval      {}\n", j.spec().eval().ids());
  if (!j.spec().eval().choices().empty()) out += fmt::format("choices   {}\n", j.spec().eval().choices());
  if (j.has_choice_score())
    out += fmt::format("result    accuracy {:.4f} +- {:.4f} ({} of {} right), acc_norm {:.4f} +- {:.4f}\n",
                       j.choice_score().acc(), j.choice_score().acc_stderr(), j.choice_score().correct(),
                       j.choice_score().items(), j.choice_score().acc_norm(), j.choice_score().acc_norm_stderr());
  else if (j.predictions() > 0)
    out += fmt::format("result    perplexity {:.4f} (mean NLL {:.6f} over {} predictions)\n", j.perplexity(), j.mean_nll(),
                       j.predictions());
  if (!j.evaluates().empty()) out += fmt::format("evaluates {} (its evaluation gate)\n", j.evaluates());
  if (j.has_evaluation()) out += render_evaluation(j);
  if (!j.error().empty()) out += fmt::format("error     {}\n", j.error());
  out += fmt::format("progress  {}\n", progress_text(j));
  if (tasks && j.tasks_size() > 0) {
    bool errors = false;
    for (const auto& ts : j.tasks()) errors = errors || !ts.last_error().empty();
    std::vector<std::string> header = {"TASK", "STATE", "ATTEMPT", "WORKER", "INPUT", "TIME"};
    if (errors) header.push_back("ERROR");
    Table t(header);
    // In a short terminal the header and progress stay; the table keeps the tasks worth
    // seeing (running, failed, with an error) and says how many it left out.
    std::vector<bool> shown(static_cast<size_t>(j.tasks_size()), true);
    size_t hidden = 0, hidden_done = 0;
    const int used = static_cast<int>(std::count(out.begin(), out.end(), '\n')) + 2;  // + blank + table header
    if (max_lines > 0 && used + j.tasks_size() > max_lines) {
      const int room = std::max(0, max_lines - used - 1);  // one line says what is not shown
      std::fill(shown.begin(), shown.end(), false);
      int taken = 0;
      // First running and failing tasks, then the ones still to run, then finished ones.
      for (int pass = 0; pass < 3; ++pass)
        for (int i = 0; i < j.tasks_size() && taken < room; ++i) {
          const auto& ts = j.tasks(i);
          const bool notable = ts.state() == LEASED || ts.state() == TASK_FAILED ||
                               (!ts.last_error().empty() && ts.state() != DONE);
          if (shown[static_cast<size_t>(i)] || (pass == 0 && !notable) || (pass == 1 && ts.state() == DONE)) continue;
          shown[static_cast<size_t>(i)] = true;
          ++taken;
        }
      for (int i = 0; i < j.tasks_size(); ++i)
        if (!shown[static_cast<size_t>(i)]) {
          ++hidden;
          hidden_done += j.tasks(i).state() == DONE;
        }
    }
    for (int i = 0; i < j.tasks_size(); ++i) {
      if (!shown[static_cast<size_t>(i)]) continue;
      const auto& ts = j.tasks(i);
      std::string time;
      if (ts.finished_ms() > ts.started_ms() && ts.state() == DONE)
        time = duration_text((ts.finished_ms() - ts.started_ms()) / 1000.0);
      else if (ts.state() == LEASED)
        time = duration_text((j.now_ms() - ts.started_ms()) / 1000.0) + " so far";
      // The task's own name ("layer.3", "fwd.3"): a pipelined layer has two tasks.
      const std::string name = ts.id().substr(ts.id().rfind('/') + 1);
      std::vector<std::string> row = {name, task_state_text(ts.state()), std::to_string(ts.attempt()), ts.worker_id(),
                                      format_bytes(ts.input_bytes()), time};
      if (errors) row.push_back(error_cell(ts.last_error()));
      t.add(std::move(row));
    }
    out += '\n';
    out += t.render();
    if (hidden > 0) out += fmt::format("... {} more task{} not shown ({} done)\n", hidden, hidden == 1 ? "" : "s", hidden_done);
  }
  return out;
}

std::string render_jobs_table(const std::vector<JobStatus>& jobs) {
  Table t({"JOB", "NAME", "STATE", "LAYERS", "OUTPUT"});
  for (const auto& j : jobs)
    t.add({j.id(), j.spec().name(), job_state_text(j.state()), fmt::format("{}/{}", j.tasks_done(), j.tasks_total()),
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

}  // namespace sp::cli
