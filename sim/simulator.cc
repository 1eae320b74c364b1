#include "sim/simulator.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <queue>
#include <set>

#include "common/byte_size.h"
#include "common/dtype.h"
#include "coordinator/affinity.h"
#include "coordinator/clock.h"
#include "coordinator/task_scheduler.h"
#include "fmt/format.h"
#include "jobs/job_plan.h"
#include "jobs/output_check.h"
#include "sim/task_cost.h"

namespace sp::sim {

using namespace shardpress::v1;  // NOLINT: the record types

namespace {

// ---- The job system's fixed costs (worker/worker.cc, coordinator/job_runner.cc) and this
// machine's rates for `--local`, measured from the events of `shardpress local --workers 2`
// runs (stories260k GPTQ, a 350M RTN job; scripts/bench-simulate.sh) and the benchmarks:
// a lease or complete call with its synced RocksDB commit (gaps between a task's done and
// the next lease: 4-7 ms, half of it the commit).
constexpr double kRpcS = 0.003;
constexpr double kIdlePollS = 0.2;    // worker.cc: nothing to lease, ask again in 200 ms
constexpr double kRunnerPollS = 0.2;  // job_runner.cc: a step that gave space back waits 200 ms for the next
// `shardpress local`: process start, RocksDB open and the workers' registration before the
// job is submitted, and after it succeeded noticing it (a 50 ms status poll), stopping the
// workers and exiting: wall minus the events' span is 0.15-0.23 s (stories260k GPTQ 2.91-
// 2.97 s for 2.74-2.77 s; 350M RTN 1.57-1.82 s for 1.36-1.58 s).
constexpr double kLocalStartS = 0.15;
constexpr double kLocalStopS = 0.05;
// Loopback gRPC (`bench_blob_transfer`, 512 MiB): a worker's upload into the coordinator's
// RocksDB, and a fetch out of it. Each keeps two threads busy (client and server).
constexpr double kLoopbackPutBytesPerS = 0.32e9;
constexpr double kLoopbackFetchBytesPerS = 0.45e9;
// This machine with the model's files in the page cache: the import's read + XXH3-128
// (674 MiB in 85 ms), a worker's read of its inputs at the source, and the assembly's
// reading of results and writing + fsync of the output (267 MiB in 0.49 s).
constexpr double kLocalImportBytesPerS = 8.0e9;
constexpr double kLocalSourceReadBytesPerS = 5.0e9;
constexpr double kLocalAssemblyBytesPerS = 0.55e9;
// The coordinator's data dir before any job (`scripts/bench-disk.sh`: 187,069 B).
constexpr uint64_t kEmptyStateBytes = 187'069;
// A simulation that would run longer than this is a lab that cannot finish the job.
constexpr double kGiveUpAfterS = 90.0 * 24 * 3600;

constexpr char kJobId[] = "sim";

struct Resource {
  double capacity = 1;  // how many users run at full speed at once
  int users = 0;
};

struct Activity {
  double remaining = 0;  // seconds left at full speed
  std::vector<int> resources;
  int worker = -1;  // whose time it is (-1: the coordinator's)
  bool compute = false;
  double speed = 1;
  std::function<void()> done;
};

struct Timer {
  double at;
  uint64_t seq;
  std::function<void()> fire;
  bool operator>(const Timer& o) const { return at > o.at || (at == o.at && seq > o.seq); }
};

struct Held {
  TaskRecord task;
  const TaskPlan* plan = nullptr;
};

struct WorkerState {
  WorkerModel model;
  WorkerReport report;
  std::set<std::string> has;  // its cache: what it fetched or made (the coordinator's view)
  std::optional<Held> current;
  bool prefetching = false;      // leasing + fetching the next task beside the current one
  std::optional<Held> next;      // what the prefetch got
  bool waiting_for_next = false; // the current task is done; the prefetch has not returned
  uint64_t held_memory = 0;
  int cpu = 0, in = 0, out = 0, disk = 0;  // resources
};

class Simulation {
 public:
  Simulation(const ModelDescription& model, const JobSpec& spec, const JobSettings& settings, CalibrationShape data,
             const LabModel& lab)
      : model_(model), spec_(spec), settings_(settings), data_(data), lab_(lab), clock_(0),
        scheduler_(clock_, SchedulerOptions{}) {}

  absl::StatusOr<SimReport> run();

 private:
  // -- the engine
  int add_resource(double capacity) {
    resources_.push_back({capacity, 0});
    return static_cast<int>(resources_.size()) - 1;
  }
  void after(double seconds, std::function<void()> f) { timers_.push({now_ + seconds, seq_++, std::move(f)}); }
  void start(double seconds, std::vector<int> resources, int worker, bool compute, std::function<void()> done) {
    if (seconds <= 0) return after(0, std::move(done));
    activities_.push_back({seconds, std::move(resources), worker, compute, 1, std::move(done)});
  }
  absl::Status advance();

  // -- the coordinator
  void import_shard(int shard);
  std::optional<Held> lease(int w, uint64_t free_memory);
  void complete(int w, const Held& h, const std::vector<OutputGroup>& outputs);
  void runner_assembles();
  // The runner writing the output while tasks finish (coordinator/job_assembly.h): one
  // piece at a time, in the order results land; assembly ends once it has caught up.
  void write_output(uint64_t bytes);
  void write_next();
  void assemble();
  std::vector<TensorMeta> inputs_of(const TaskPlan& p) const;
  std::vector<OutputGroup> outputs_of(const TaskPlan& p) const;
  int stage_of(const TaskRecord& t) const { return plan_.shards(t.shard_index()).stage(); }
  const TaskPlan& plan_task(const TaskRecord& t) const { return plan_.tasks(t.plan_index()); }
  void store(int64_t delta) {
    stored_ = static_cast<uint64_t>(static_cast<int64_t>(stored_) + delta);
    report_.coordinator_disk_peak = std::max(report_.coordinator_disk_peak, stored_);
  }

  // -- the workers (worker/worker.cc's loop)
  void poll(int w);
  void lease_and_fetch(int w, uint64_t free_memory, std::function<void(std::optional<Held>)> then);
  void execute(int w);
  void after_task(int w);
  double transfer_seconds(uint64_t bytes, double link) const;

  const ModelDescription& model_;
  const JobSpec& spec_;
  const JobSettings& settings_;
  CalibrationShape data_;
  const LabModel& lab_;
  FakeClock clock_;
  int64_t clock_ms_ = 0;
  TaskScheduler scheduler_;
  Affinity affinity_;
  JobPlan plan_;

  double now_ = 0;
  uint64_t seq_ = 0;
  std::vector<Resource> resources_;
  std::vector<Activity> activities_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;

  std::vector<WorkerState> workers_;
  int coord_cpu_ = 0, coord_in_ = 0, coord_out_ = 0, coord_disk_ = 0;
  int imported_shards_ = 0;
  bool imported_ = false;
  int tasks_done_ = 0;
  bool finished_ = false;
  uint64_t stored_ = kEmptyStateBytes;
  std::deque<uint64_t> output_queue_;  // bytes the runner has still to write, in order
  bool writing_ = false, assembling_ = false;
  double assembly_start_s_ = 0;
  std::map<std::string, int> readers_left_;  // activations digest -> tasks still to read them
  std::map<std::string, uint64_t> activation_bytes_;
  std::map<std::pair<int, std::string>, double> compute_cache_;  // (plan task, device) -> seconds
  std::map<std::pair<int, std::string>, uint64_t> vram_cache_;
  std::set<std::string> notes_;
  SimReport report_;
};

absl::Status Simulation::advance() {
  for (auto& r : resources_) r.users = 0;
  for (const auto& a : activities_)
    for (int r : a.resources) resources_[static_cast<size_t>(r)].users++;
  double dt = std::numeric_limits<double>::infinity();
  for (auto& a : activities_) {
    a.speed = 1;
    for (int r : a.resources) {
      const Resource& res = resources_[static_cast<size_t>(r)];
      a.speed = std::min(a.speed, std::min(1.0, res.capacity / res.users));
    }
    dt = std::min(dt, a.remaining / a.speed);
  }
  if (!timers_.empty()) dt = std::min(dt, timers_.top().at - now_);
  if (!std::isfinite(dt)) return absl::InternalError("the simulation stalled: nothing left to happen");
  dt = std::max(dt, 0.0);
  std::vector<char> computing(workers_.size()), moving(workers_.size());
  for (const auto& a : activities_)
    if (a.worker >= 0) (a.compute ? computing : moving)[static_cast<size_t>(a.worker)] = 1;
  for (size_t i = 0; i < workers_.size(); ++i) {
    WorkerReport& r = workers_[i].report;
    if (computing[i]) r.compute_s += dt;
    if (moving[i]) r.transfer_s += dt;
    if (workers_[i].held_memory == 0) r.idle_s += dt;
  }
  for (auto& a : activities_) a.remaining -= a.speed * dt;
  now_ += dt;
  const int64_t ms = static_cast<int64_t>(std::llround(now_ * 1000));
  clock_.advance(ms - clock_ms_);
  clock_ms_ = ms;
  if (now_ > kGiveUpAfterS) return absl::FailedPreconditionError("the job would run for more than 90 days on this lab");

  std::vector<std::function<void()>> fire;
  for (auto it = activities_.begin(); it != activities_.end();) {
    if (it->remaining <= 1e-9 * std::max(1.0, now_)) {
      fire.push_back(std::move(it->done));
      it = activities_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& f : fire) f();
  while (!timers_.empty() && timers_.top().at <= now_) {
    auto f = timers_.top().fire;
    timers_.pop();
    f();
  }
  return absl::OkStatus();
}

double Simulation::transfer_seconds(uint64_t bytes, double link) const { return static_cast<double>(bytes) / link; }

std::vector<TensorMeta> Simulation::inputs_of(const TaskPlan& p) const {
  return resolve_inputs(plan_, p, [this](const std::string& name) { return scheduler_.find(std::string(kJobId) + "/" + name); });
}

std::vector<OutputGroup> Simulation::outputs_of(const TaskPlan& p) const {
  std::vector<OutputGroup> groups;
  const CompressSettings& cs = settings_.compress;
  const std::string prefix = fmt::format("out/{}/", p.name());
  const bool forward_only = p.kind() == FORWARD_LAYER || p.kind() == EVAL_HEAD;
  if (!forward_only) {
    for (const auto& in : plan_.shards(p.shard()).tensors()) {
      OutputGroup g;
      for (const auto& t : expected_output(in, cs).tensors) {
        TensorMeta* m = g.add_tensors();
        m->set_name(t.name);
        uint64_t numel = 1;
        for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
        m->set_nbytes(numel * dtype_size(t.dtype));
        m->set_digest(prefix + t.name);
      }
      groups.push_back(std::move(g));
    }
  }
  if (p.returns_activations()) {
    uint64_t numel = 1;
    for (int64_t d : plan_.activations_shape()) numel *= static_cast<uint64_t>(d);
    OutputGroup g;
    TensorMeta* m = g.add_tensors();
    m->set_name(kActivationsTensor);
    m->set_nbytes(numel * dtype_size(activations_dtype(spec_)));
    m->set_digest("act/" + p.name());
    groups.push_back(std::move(g));
  }
  return groups;
}

void Simulation::import_shard(int shard) {
  uint64_t bytes = 0;
  for (const auto& m : plan_.shards(shard).tensors()) bytes += m.nbytes();
  const double rate = lab_.local ? kLocalImportBytesPerS : lab_.coordinator_disk;
  const std::vector<int> res = lab_.local ? std::vector<int>{coord_cpu_} : std::vector<int>{coord_disk_};
  // A copy of the model is written as well as read.
  const double seconds = transfer_seconds(bytes, rate) * (lab_.copy_import ? 2 : 1);
  start(seconds, res, -1, false, [this, shard, bytes] {
    after(kRpcS, [this, shard, bytes] {
      if (lab_.copy_import) store(static_cast<int64_t>(bytes));
      imported_shards_ = shard + 1;
      scheduler_.upsert(scheduler_.created_by_import(kJobId, plan_, shard));
      if (shard + 1 < plan_.shards_size()) return import_shard(shard + 1);
      imported_ = true;
      report_.import_s = now_;
      uint64_t pass_through = 0;  // the stream opens: the shards that go out as imported first
      for (const auto& s : plan_.shards())
        if (!s.auxiliary() && s.output_task().empty())
          for (const auto& m : s.tensors()) pass_through += m.nbytes();
      write_output(pass_through);
      if (tasks_done_ == static_cast<int>(scheduler_.tasks_of(kJobId).size())) runner_assembles();
    });
  });
}

std::optional<Held> Simulation::lease(int w, uint64_t free_memory) {
  WorkerState& ws = workers_[static_cast<size_t>(w)];
  TaskScheduler::LeaseQuery q;
  q.leasable = [&](const TaskRecord& t) {
    if (last_shard_read(plan_task(t)) >= imported_shards_) return false;
    const std::string holder = holder_of_inputs(
        plan_, plan_task(t), [this](const std::string& name) { return scheduler_.find(std::string(kJobId) + "/" + name); });
    return holder.empty() || holder == ws.model.id;
  };
  q.memory_of = [&](const TaskRecord& t) { return plan_task(t).memory(); };
  q.affinity = [&](const TaskRecord& t) {
    return affinity_.score(t, stage_of(t), inputs_of(plan_task(t)), ws.has, ws.model.id);
  };
  auto granted = scheduler_.choose_lease(ws.model.id, free_memory, q);
  if (!granted) return std::nullopt;
  scheduler_.upsert(*granted);
  affinity_.leased(*granted, stage_of(*granted), ws.model.id);
  return Held{*granted, &plan_task(*granted)};
}

void Simulation::complete(int w, const Held& h, const std::vector<OutputGroup>& outputs) {
  WorkerState& ws = workers_[static_cast<size_t>(w)];
  auto done = scheduler_.completion(ws.model.id, h.task.id(), h.task.attempt(), outputs, {});
  if (!done.ok()) {
    notes_.insert(fmt::format("internal: {}", std::string(done.status().message())));
    return;
  }
  std::vector<TaskRecord> changed = scheduler_.promotions(kJobId, *done);
  scheduler_.upsert(*done);
  scheduler_.upsert(changed);
  for (const auto& g : outputs)
    for (const auto& m : g.tensors()) {
      if (is_internal_tensor(m.name())) {
        ws.has.insert(m.digest());
        if (h.plan->keeps_activations()) continue;  // on the worker's disk, not the coordinator's
        activation_bytes_[m.digest()] = m.nbytes();
      }
      store(static_cast<int64_t>(m.nbytes()));
    }
  // Activations nobody will read any more are deleted (their owners were the readers).
  for (const auto& in : inputs_of(*h.plan))
    if (is_internal_tensor(in.name()) && --readers_left_[in.digest()] == 0 && activation_bytes_.count(in.digest()))
      store(-static_cast<int64_t>(activation_bytes_[in.digest()]));
  uint64_t out = 0;  // a layer's result goes into the output as soon as it is done
  for (const auto& sh : plan_.shards())
    if (sh.output_task() == h.plan->name())
      for (const auto& g : outputs)
        for (const auto& m : g.tensors())
          if (!is_internal_tensor(m.name())) out += m.nbytes();
  write_output(out);
  ws.report.tasks++;
  report_.tasks_end_s = now_;
  if (++tasks_done_ == static_cast<int>(scheduler_.tasks_of(kJobId).size()) && imported_) runner_assembles();
}

void Simulation::runner_assembles() {
  // The runner gives deleted activations' space back in a step of its own, then waits for
  // its next step to assemble.
  if (activation_bytes_.empty()) return assemble();
  after(kRunnerPollS, [this] { assemble(); });
}

void Simulation::write_output(uint64_t bytes) {
  if (!spec_.eval().ids().empty() || bytes == 0) return;  // an evaluation writes nothing
  output_queue_.push_back(bytes);
  if (!writing_) write_next();
}

void Simulation::write_next() {
  if (output_queue_.empty()) {
    writing_ = false;
    if (assembling_) assemble();
    return;
  }
  writing_ = true;
  const uint64_t bytes = output_queue_.front();
  output_queue_.pop_front();
  const double seconds = lab_.local ? transfer_seconds(bytes, kLocalAssemblyBytesPerS)
                                    : 2 * transfer_seconds(bytes, lab_.coordinator_disk);  // read result, write
  start(seconds, {lab_.local ? coord_cpu_ : coord_disk_}, -1, false, [this, bytes] {
    store(static_cast<int64_t>(bytes));
    report_.output_bytes += bytes;
    write_next();
  });
}

void Simulation::assemble() {
  // The output has been written as results landed; the end waits for the runner to catch
  // up (then headers, fsync and rename: small next to the writes).
  if (!assembling_) {
    assembling_ = true;
    assembly_start_s_ = now_;
  }
  if (writing_ || !output_queue_.empty()) return;  // write_next() calls again
  report_.assembly_s = now_ - assembly_start_s_;
  report_.wall_s = now_ + (lab_.local ? kLocalStopS : 0);
  finished_ = true;
}

void Simulation::poll(int w) {
  if (finished_) return;
  WorkerState& ws = workers_[static_cast<size_t>(w)];
  lease_and_fetch(w, ws.model.ram, [this, w](std::optional<Held> h) {
    WorkerState& s = workers_[static_cast<size_t>(w)];
    if (!h) return after(kIdlePollS, [this, w] { poll(w); });
    s.current = std::move(h);
    execute(w);
  });
}

void Simulation::lease_and_fetch(int w, uint64_t free_memory, std::function<void(std::optional<Held>)> then) {
  after(kRpcS, [this, w, free_memory, then = std::move(then)] {
    std::optional<Held> h = lease(w, free_memory);
    if (!h) return then(std::nullopt);
    WorkerState& ws = workers_[static_cast<size_t>(w)];
    ws.held_memory += h->plan->memory();
    ws.report.ram_peak = std::max(ws.report.ram_peak, ws.held_memory);
    // Inputs: read at the source when this worker sees the model's files; else fetched
    // unless cached (what it fetched or made before).
    uint64_t direct = 0, fetched = 0;
    std::vector<std::string> fetched_digests;
    for (const auto& in : inputs_of(*h->plan)) {
      if (ws.has.count(in.digest())) continue;
      if (ws.model.sees_source && !is_internal_tensor(in.name())) {
        direct += in.nbytes();
        continue;
      }
      fetched += in.nbytes();
      fetched_digests.push_back(in.digest());
    }
    const double read_s = transfer_seconds(direct, lab_.local ? kLocalSourceReadBytesPerS : ws.model.disk);
    const double fetch_s =
        lab_.local ? transfer_seconds(fetched, kLoopbackFetchBytesPerS)
                   : transfer_seconds(fetched, std::min({ws.model.nic, lab_.coordinator_nic, lab_.coordinator_disk}));
    const std::vector<int> read_res = lab_.local ? std::vector<int>{ws.cpu} : std::vector<int>{ws.disk};
    const std::vector<int> fetch_res =
        lab_.local ? std::vector<int>{ws.cpu, ws.cpu} : std::vector<int>{coord_out_, ws.in, coord_disk_};
    start(read_s, read_res, w, false, [=, this] {
      start(fetch_s, fetch_res, w, false, [=, this] {
        WorkerState& s = workers_[static_cast<size_t>(w)];
        for (const auto& d : fetched_digests) s.has.insert(d);
        s.report.bytes_in += fetched;
        report_.coordinator_bytes_out += fetched;
        then(h);
      });
    });
  });
}

void Simulation::execute(int w) {
  WorkerState& ws = workers_[static_cast<size_t>(w)];
  const Held h = *ws.current;
  const uint64_t memory = h.plan->memory();
  if (memory < ws.model.ram) {  // lease and fetch the next task beside this one
    ws.prefetching = true;
    lease_and_fetch(w, ws.model.ram - memory, [this, w](std::optional<Held> next) {
      WorkerState& s = workers_[static_cast<size_t>(w)];
      s.prefetching = false;
      s.next = std::move(next);
      if (s.waiting_for_next) {
        s.waiting_for_next = false;
        after_task(w);
      }
    });
  }
  const auto key = std::make_pair(h.task.plan_index(), ws.model.device.name);
  if (!compute_cache_.count(key)) {
    const TaskWork work = task_work(model_, settings_.compress, data_, plan_, *h.plan, ws.model.device);
    compute_cache_[key] = compute_seconds(work, ws.model.device);
    vram_cache_[key] = work.vram;
    if (work.forward_on_cpu)
      notes_.insert(fmt::format("{}: no forward micro-batch fits {} of device memory; the forward runs on the host CPU",
                                ws.model.device.name, format_bytes(ws.model.device.vram)));
  }
  ws.report.vram_peak = std::max(ws.report.vram_peak, vram_cache_[key]);
  start(compute_cache_[key], {ws.cpu}, w, true, [this, w, h] {
    WorkerState& s = workers_[static_cast<size_t>(w)];
    std::vector<OutputGroup> outputs = outputs_of(*h.plan);
    uint64_t bytes = 0, kept = 0;  // uploaded; kept in the worker's cache (checkpoint_every)
    for (const auto& g : outputs)
      for (const auto& m : g.tensors())
        (h.plan->keeps_activations() && is_internal_tensor(m.name()) ? kept : bytes) += m.nbytes();
    const double seconds =
        lab_.local ? transfer_seconds(bytes, kLoopbackPutBytesPerS)
                   : transfer_seconds(bytes, std::min({s.model.nic, lab_.coordinator_nic, lab_.coordinator_disk}));
    const std::vector<int> res =
        lab_.local ? std::vector<int>{s.cpu, s.cpu} : std::vector<int>{s.out, coord_in_, coord_disk_};
    // Kept activations are written to the worker's own cache first (at its disk's rate).
    const double keep_s = transfer_seconds(kept, lab_.local ? kLocalSourceReadBytesPerS : s.model.disk);
    const std::vector<int> keep_res = lab_.local ? std::vector<int>{s.cpu} : std::vector<int>{s.disk};
    start(keep_s, keep_res, w, false, [=, this, outputs = std::move(outputs)] {
      start(seconds, res, w, false, [this, w, h, bytes, outputs] {
        WorkerState& u = workers_[static_cast<size_t>(w)];
        u.report.bytes_out += bytes;
        report_.coordinator_bytes_in += bytes;
        after(kRpcS, [this, w, h, outputs] {
          complete(w, h, outputs);
          WorkerState& v = workers_[static_cast<size_t>(w)];
          v.held_memory -= h.plan->memory();
          v.current.reset();
          if (v.prefetching) {
            v.waiting_for_next = true;
            return;
          }
          after_task(w);
        });
      });
    });
  });
}

void Simulation::after_task(int w) {
  WorkerState& ws = workers_[static_cast<size_t>(w)];
  if (ws.next) {
    ws.current = std::move(ws.next);
    ws.next.reset();
    return execute(w);
  }
  poll(w);  // nothing prefetched: ask again now (then every 200 ms)
}

absl::StatusOr<SimReport> Simulation::run() {
  plan_ = plan_job(model_, settings_, data_);
  for (auto& s : *plan_.mutable_shards())  // what the import records: a digest per tensor
    for (auto& m : *s.mutable_tensors()) m.set_digest(fmt::format("src/{}/{}", s.id(), m.name()));
  for (const auto& t : plan_.tasks())
    for (const auto& in : t.inputs())
      if (!in.activations_of().empty()) readers_left_["act/" + in.activations_of()]++;
  for (const auto& s : plan_.shards())
    for (const auto& m : s.tensors())
      if (!s.auxiliary()) report_.model_bytes += m.nbytes();
  uint64_t most_ram = 0;
  for (const auto& w : lab_.workers) most_ram = std::max(most_ram, w.ram);
  for (const auto& t : plan_.tasks())
    if (t.memory() > most_ram)
      return absl::FailedPreconditionError(
          fmt::format("task {} needs {} of host memory and no worker has that much (the largest has {}); the job "
                      "would wait forever: give a worker more memory (ram=...) or lower calibrate.samples",
                      t.name(), format_bytes(t.memory()), format_bytes(most_ram)));

  const int host = lab_.local ? add_resource(std::max(1, lab_.cores)) : -1;
  coord_cpu_ = lab_.local ? host : add_resource(1);
  coord_in_ = add_resource(1);
  coord_out_ = add_resource(1);
  coord_disk_ = add_resource(1);
  for (const auto& m : lab_.workers) {
    WorkerState w;
    w.model = m;
    w.report.id = m.id;
    w.report.device = m.device.name;
    w.cpu = lab_.local ? host : add_resource(1);
    w.in = add_resource(1);
    w.out = add_resource(1);
    w.disk = add_resource(1);
    workers_.push_back(std::move(w));
  }
  after(lab_.local ? kLocalStartS : kRpcS, [this] {
    import_shard(0);
    for (size_t w = 0; w < workers_.size(); ++w) poll(static_cast<int>(w));
  });
  while (!finished_) SP_RETURN_IF_ERROR(advance());
  report_.tasks = tasks_done_;
  for (auto& w : workers_) report_.workers.push_back(w.report);
  report_.notes.assign(notes_.begin(), notes_.end());
  return report_;
}

}  // namespace

absl::StatusOr<SimReport> simulate(const ModelDescription& model, const JobSpec& spec, const JobSettings& settings,
                                   CalibrationShape data, const LabModel& lab) {
  if (lab.workers.empty()) return absl::InvalidArgumentError("the lab has no workers");
  Simulation sim(model, spec, settings, data, lab);
  return sim.run();
}

}  // namespace sp::sim
