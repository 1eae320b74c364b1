// shardpress-worker: pulls tasks from a coordinator and runs them. Flags override keys
// of --config worker.yaml (coordinator, cache_dir, device, memory, threads, cache_size).
// SIGTERM/SIGINT: finish the task in hand, stop leasing, exit 0.
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <cstdio>
#include <thread>

#include "CLI/CLI.hpp"
#include "common/byte_size.h"
#include "common/test_hooks.h"
#include "common/token.h"
#include "common/config_file.h"
#include "fmt/format.h"
#include "worker/device.h"
#include "worker/worker.h"

namespace {

struct Flags {
  std::string config, coordinator = "127.0.0.1:7070", cache_dir, device = "auto", memory = "11GiB",
                      cache_size = "64GiB", gpu_memory;
  std::string threads = "1";
  std::string token_file, tls_ca, tls_cert, tls_key, test_hooks;
  bool no_direct_read = false;
};

int fail(const absl::Status& s) {
  std::fprintf(stderr, "shardpress-worker: %s\n", std::string(s.message()).c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  if (const char* env = std::getenv("SHARDPRESS_COORDINATOR")) f.coordinator = env;
  f.config = sp::config_path_from_args(argc, argv);
  if (!f.config.empty()) {
    auto st = sp::load_config_file(f.config, {{"coordinator", &f.coordinator}, {"cache_dir", &f.cache_dir},
                                              {"device", &f.device}, {"memory", &f.memory},
                                              {"gpu_memory", &f.gpu_memory},
                                              {"cache_size", &f.cache_size}, {"threads", &f.threads},
                                              {"token_file", &f.token_file}, {"tls_ca", &f.tls_ca},
                                              {"tls_cert", &f.tls_cert}, {"tls_key", &f.tls_key}});
    if (!st.ok()) return fail(st);
  }
  CLI::App app{"shardpress-worker: runs prune/quantize tasks for a shardpress coordinator"};
  app.add_option("--config", f.config, "YAML file with the settings below (flags override it)");
  app.add_option("--coordinator", f.coordinator, "Coordinator HOST:PORT")->capture_default_str();
  app.add_option("--cache-dir", f.cache_dir, "Folder for the blob cache and the worker id")->required(f.cache_dir.empty());
  app.add_option("--device", f.device, "auto, cpu or cuda:N")->capture_default_str();
  app.add_option("--memory", f.memory, "Memory budget for tasks (host memory)")->capture_default_str();
  app.add_option("--gpu-memory", f.gpu_memory,
                 "Device memory GPU work may use (default: what the device has free)");
  app.add_option("--threads", f.threads, "Cores this worker offers, as `workers` shows them; tasks compute with one thread so that their "
                 "bytes never depend on it (run one worker per core to use more)")
      ->capture_default_str();
  app.add_option("--cache-size", f.cache_size, "Largest size of the blob cache")->capture_default_str();
  app.add_option("--token-file", f.token_file, "File with the coordinator's shared token");
  app.add_option("--tls-ca", f.tls_ca, "TLS: CA certificate that signed the coordinator's");
  app.add_option("--tls-cert", f.tls_cert, "Mutual TLS: this worker's certificate");
  app.add_option("--tls-key", f.tls_key, "Mutual TLS: its private key");
  app.add_option("--test-hooks", f.test_hooks, "")->group("");  // hidden: end-to-end tests only
  app.add_flag("--no-direct-read", f.no_direct_read,
               "Always fetch inputs from the coordinator, even when the source model file is visible here");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  sp::WorkerOptions o;
  o.coordinator = f.coordinator;
  o.cache_dir = f.cache_dir;
  o.threads = std::atoi(f.threads.c_str());
  if (o.threads < 1) return fail(absl::InvalidArgumentError("--threads must be a positive integer"));
  o.direct_read = !f.no_direct_read;
  auto hooks = sp::parse_test_hooks(f.test_hooks);
  if (!hooks.ok()) return fail(hooks.status());
  o.task_delay_ms = hooks->task_delay_ms;
  if (!f.token_file.empty()) {
    auto token = sp::read_token_file(f.token_file);
    if (!token.ok()) return fail(token.status());
    o.token = *token;
  }
  o.tls = {f.tls_ca, f.tls_cert, f.tls_key};
  auto mem = sp::parse_byte_size(f.memory);
  if (!mem.ok()) return fail(sp::annotate(mem.status(), "--memory"));
  auto cache = sp::parse_byte_size(f.cache_size);
  if (!cache.ok()) return fail(sp::annotate(cache.status(), "--cache-size"));
  o.memory = *mem;
  o.cache_capacity = *cache;
  auto gpu = sp::gpu_memory_budget(f.gpu_memory);
  if (!gpu.ok()) return fail(gpu.status());
  o.gpu_memory = *gpu;
  auto device = sp::choose_device(f.device);
  if (!device.ok()) return fail(device.status());
  o.device = device->label;
  o.cuda_device = device->cuda;

  // Signals: a handler (any thread may take the signal: OpenBLAS starts its thread pool
  // before main, with signals unblocked) writes the number to a pipe; one thread acts.
  static int sig_pipe[2] = {-1, -1};
  if (::pipe(sig_pipe) != 0) return fail(absl::InternalError("cannot create the signal pipe"));
  struct sigaction sa {};
  sa.sa_handler = [](int s) {
    const char c = static_cast<char>(s);
    [[maybe_unused]] const ssize_t n = ::write(sig_pipe[1], &c, 1);
  };
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  auto w = sp::Worker::create(o);
  if (!w.ok()) return fail(w.status());
  sp::Worker* worker = w->get();
  std::thread sig([worker] {
    char c = 0;
    while (::read(sig_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    std::fprintf(stderr, "shardpress-worker: signal %d, finishing the current task\n", static_cast<int>(c));
    worker->stop();
  });
  sig.detach();
  auto st = worker->run();
  if (!st.ok()) {
    std::fprintf(stderr, "shardpress-worker: %s\n", std::string(st.message()).c_str());
    return absl::IsUnauthenticated(st) ? 2 : 1;
  }
  return 0;
}
