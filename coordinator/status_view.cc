#include "coordinator/status_view.h"

#include "jobs/evaluation_gate.h"

#include <algorithm>
#include <cmath>

#include "common/byte_size.h"
#include "coordinator/job_registry.h"
#include "fmt/format.h"
#include "jobs/job_settings.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT

std::string task_state_word(TaskState s) {
  switch (s) {
    case WAITING: return "waiting";
    case READY: return "ready";
    case LEASED: return "leased";
    case DONE: return "done";
    default: return "failed";
  }
}

JobStatus job_status_view(const JobRecord& j, const std::vector<const TaskRecord*>& tasks, const std::string& phase,
                          const WorkerRegistry& workers, int64_t now_ms, bool with_tasks) {
  JobStatus s;
  s.set_id(j.id());
  *s.mutable_spec() = j.spec();
  s.set_state(j.state());
  s.set_error(j.error());
  s.set_created_ms(j.created_ms());
  s.set_started_ms(j.started_ms());
  s.set_finished_ms(j.finished_ms());
  s.set_model_dir(j.model_dir());
  s.set_output_dir(j.output_dir());
  s.set_output_bytes(j.output_bytes());
  uint64_t parameters = 0;
  for (const auto& shard : j.plan().shards()) {
    if (shard.auxiliary()) continue;
    for (const auto& t : shard.tensors()) {
      uint64_t n = 1;
      for (int64_t d : t.shape()) n *= static_cast<uint64_t>(std::max<int64_t>(d, 0));
      parameters += n;
    }
  }
  s.set_parameters(parameters);
  s.set_now_ms(now_ms);
  s.set_spec_digest(spec_digest(j.spec()));
  s.set_imported(j.imported());
  const JobPlan& plan = j.plan();
  auto shard_bytes = [&](const TaskRecord& t) {
    uint64_t bytes = 0;
    if (t.shard_index() >= 0 && t.shard_index() < plan.shards_size())
      for (const auto& m : plan.shards(t.shard_index()).tensors()) bytes += m.nbytes();
    return bytes;
  };
  auto memory = [&](const TaskRecord& t) {
    return t.plan_index() >= 0 && t.plan_index() < plan.tasks_size() ? plan.tasks(t.plan_index()).memory() : 0;
  };
  for (const auto* t : tasks) {
    const uint64_t bytes = shard_bytes(*t);
    s.set_tasks_total(s.tasks_total() + 1);
    s.set_bytes_total(s.bytes_total() + bytes);
    if (t->state() == DONE) {
      s.set_tasks_done(s.tasks_done() + 1);
      s.set_bytes_done(s.bytes_done() + bytes);
    }
    if (!with_tasks) continue;
    TaskStatus* ts = s.add_tasks();
    ts->set_id(t->id());
    if (t->shard_index() >= 0 && t->shard_index() < plan.shards_size()) ts->set_shard(plan.shards(t->shard_index()).id());
    ts->set_state(t->state());
    ts->set_attempt(t->attempt());
    ts->set_worker_id(t->worker_id());
    ts->set_started_ms(t->started_ms());
    ts->set_finished_ms(t->finished_ms());
    ts->set_last_error(t->last_error());
    ts->set_statistics_from(t->statistics_from());
    ts->set_input_bytes(bytes);
    ts->set_memory_estimate(memory(*t));
  }
  if (const auto acc = choice_accuracy_of(plan, j.result())) *s.mutable_choice_score() = choice_score(*acc);
  if (j.result().predictions() > 0) {
    s.set_predictions(j.result().predictions());
    s.set_mean_nll(j.result().nll() / static_cast<double>(j.result().predictions()));
    s.set_perplexity(std::exp(s.mean_nll()));
    if (plan.activations_shape_size() == 3) {
      s.set_sequences(plan.activations_shape(0));
      s.set_seq_len(plan.activations_shape(1));
    }
  }
  if (!phase.empty())
    s.set_phase(phase);
  else if (j.state() == RUNNING)
    s.set_phase(!j.imported() ? "importing" : is_eval_job(j.spec()) ? "evaluating" : "compressing");
  else
    s.set_phase(job_state_name(j.state()));
  if (j.state() == RUNNING) {
    // Say why nothing runs: no live worker, or none with enough memory for a task.
    uint64_t smallest_ready = UINT64_MAX, largest_worker = 0;
    bool leased = false;
    for (const auto* t : tasks) {
      if (t->state() == READY) smallest_ready = std::min(smallest_ready, memory(*t));
      leased = leased || t->state() == LEASED;
    }
    size_t alive = 0;
    for (const auto& [id, w] : workers.all()) {
      if (!workers.alive(w)) continue;
      ++alive;
      largest_worker = std::max(largest_worker, w.record.memory());
    }
    if (smallest_ready != UINT64_MAX && !leased) {
      if (alive == 0)
        s.set_phase("waiting for a worker (none connected)");
      else if (largest_worker < smallest_ready)
        s.set_phase(fmt::format("waiting: a task needs {} but the largest worker offers {}",
                                format_bytes(smallest_ready), format_bytes(largest_worker)));
    }
  }
  return s;
}

WorkerInfo worker_view(const WorkerRegistry::Worker& w, bool alive, const std::vector<std::string>& leased_tasks) {
  WorkerInfo i;
  i.set_id(w.record.id());
  i.set_host(w.record.host());
  i.set_device(w.record.device());
  i.set_memory(w.record.memory());
  i.set_threads(w.record.threads());
  i.set_registered_ms(w.record.registered_ms());
  i.set_last_seen_ms(w.last_seen_ms);
  i.set_alive(alive);
  for (const auto& t : leased_tasks) i.add_tasks(t);
  return i;
}

std::string metrics_text(const MetricsInput& in, const CoordinatorMetrics& m) {
  std::string out;
  // One metric family: HELP, TYPE, then `name{labels} value` lines.
  auto header = [&out](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  auto family = [&](const char* name, const char* type, const char* help,
                    const std::vector<std::pair<std::string, uint64_t>>& samples) {
    header(name, type, help);
    for (const auto& [labels, v] : samples) out += fmt::format("{}{} {}\n", name, labels, v);
  };
  auto by_state = [](const std::map<std::string, int>& counts) {
    std::vector<std::pair<std::string, uint64_t>> v;
    for (const auto& [state, n] : counts) v.push_back({fmt::format("{{state=\"{}\"}}", state), n});
    return v;
  };
  std::map<std::string, int> tasks = in.tasks_by_state, jobs = in.jobs_by_state;
  for (const char* s : {"waiting", "ready", "leased", "done", "failed"}) tasks.emplace(s, 0);
  for (const char* s : {"queued", "running", "assembling", "evaluating", "succeeded", "failed", "cancelled"}) jobs.emplace(s, 0);
  family("shardpress_tasks", "gauge", "Tasks by state.", by_state(tasks));
  family("shardpress_jobs", "gauge", "Jobs by state.", by_state(jobs));
  family("shardpress_workers_alive", "gauge", "Workers seen recently.", {{"", in.workers_alive}});
  family("shardpress_workers_known", "gauge", "Workers known (registered, not forgotten).", {{"", in.workers_known}});
  family("shardpress_blobs", "gauge", "Blobs in the state store.", {{"", in.blobs}});
  family("shardpress_blob_bytes", "gauge", "Bytes of the blobs in the state store.", {{"", in.blob_bytes}});
  family("shardpress_intermediate_blobs", "gauge",
         "Activation blobs kept for tasks that have not read them yet (deleted as their last reader finishes).",
         {{"", in.intermediate_blobs}});
  family("shardpress_blobs_deleted_total", "counter", "Blobs deleted when their last owner let go.",
         {{"", m.blobs_deleted.load()}});
  family("shardpress_blob_bytes_received_total", "counter", "Blob bytes uploaded by workers.", {{"", m.blob_bytes_in.load()}});
  family("shardpress_blob_bytes_sent_total", "counter", "Blob bytes sent to workers.", {{"", m.blob_bytes_out.load()}});
  family("shardpress_leases_total", "counter", "Leases granted.", {{"", m.leases.load()}});
  family("shardpress_stale_results_total", "counter", "Results refused (lease lost).", {{"", m.stale_results.load()}});
  family("shardpress_auth_failures_total", "counter", "Calls refused for a missing or wrong token.",
         {{"", m.auth_failures.load()}});
  family("shardpress_tasks_completed_total", "counter", "Task results accepted.", {{"", m.tasks_completed.load()}});
  auto label = [](const std::string& v) {  // a label value, escaped as the exposition format says
    std::string out;
    for (char ch : v) out += ch == '\\' ? "\\\\" : ch == '"' ? "\\\"" : ch == '\n' ? "\\n" : std::string(1, ch);
    return out;
  };
  std::vector<std::pair<std::string, uint64_t>> up;
  for (const auto& w : in.workers)
    up.push_back({fmt::format("{{worker=\"{}\",host=\"{}\"}}", label(w.id), label(w.host)), w.alive ? 1 : 0});
  family("shardpress_worker_up", "gauge", "1 while a worker is seen, 0 once it is silent.", up);
  header("shardpress_job_duration_seconds", "gauge", "A job's time from start to end (to now while it runs).");
  for (const auto& j : in.jobs)
    out += fmt::format("shardpress_job_duration_seconds{{job=\"{}\",name=\"{}\",state=\"{}\"}} {:.3f}\n", label(j.id),
                       label(j.name), label(j.state), j.seconds);
  return out;
}

}  // namespace sp
