// shardpress-coordinator: the daemon. Flags override keys of --config coordinator.yaml:
//   listen: 127.0.0.1:7070        data_dir: /var/lib/shardpress
//   model_root: /models           output_root: /models/out
//   metrics_listen: 127.0.0.1:9100
//   lease_ttl: 30s                heartbeat_interval: 3s       max_failures: 3
//   forget_workers_after: 1h     retention: 0 (keep finished jobs; e.g. 7d)
//   max_shard_size: 5GB           min_free_space: 512MiB
//   import: reference (read models in place) | copy (a copy in the data dir)
#include <cstdio>
#include <filesystem>

#include "CLI/CLI.hpp"
#include "common/byte_size.h"
#include "common/log_line.h"
#include "common/test_hooks.h"
#include "common/duration.h"
#include "common/token.h"
#include "common/config_file.h"
#include "coordinator/runtime.h"
#include "fmt/format.h"

namespace {

struct Flags {
  std::string config, listen = "127.0.0.1:7070", data_dir, model_root, output_root, metrics_listen;
  std::string lease_ttl = "30s", heartbeat_interval = "3s", max_shard_size = "5GB", min_free_space = "512MiB";
  std::string max_failures = "3", forget_workers_after = "1h", retention = "0", test_hooks;
  std::string import_mode = "reference";
  std::string token_file, tls_cert, tls_key, tls_client_ca;
  bool insecure = false;
};

// 127.0.0.0/8, ::1 and localhost: reachable from this machine only.
bool is_loopback(const std::string& listen) {
  const std::string host = listen.substr(0, listen.rfind(':'));
  return host.rfind("127.", 0) == 0 || host == "localhost" || host == "[::1]" || host == "::1";
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  f.config = sp::config_path_from_args(argc, argv);
  if (!f.config.empty()) {
    auto st = sp::load_config_file(
        f.config, {{"listen", &f.listen}, {"data_dir", &f.data_dir}, {"model_root", &f.model_root},
                   {"output_root", &f.output_root}, {"metrics_listen", &f.metrics_listen}, {"lease_ttl", &f.lease_ttl},
                   {"heartbeat_interval", &f.heartbeat_interval}, {"max_failures", &f.max_failures},
                   {"max_shard_size", &f.max_shard_size}, {"min_free_space", &f.min_free_space},
                   {"forget_workers_after", &f.forget_workers_after}, {"retention", &f.retention},
                   {"import", &f.import_mode},
                   {"token_file", &f.token_file},
                   {"tls_cert", &f.tls_cert}, {"tls_key", &f.tls_key}, {"tls_client_ca", &f.tls_client_ca}});
    if (!st.ok()) {
      std::fprintf(stderr, "shardpress-coordinator: %s\n", std::string(st.message()).c_str());
      return 2;
    }
  }
  CLI::App app{"shardpress-coordinator: plans jobs, leases tasks to workers, assembles checkpoints"};
  app.add_option("--config", f.config, "YAML file with the settings below (flags override it)");
  app.add_option("--listen", f.listen, "gRPC address")->capture_default_str();
  app.add_option("--data-dir", f.data_dir, "State (RocksDB) folder")->required(f.data_dir.empty());
  app.add_option("--model-root", f.model_root, "Jobs may only read models under this folder")->required(f.model_root.empty());
  app.add_option("--output-root", f.output_root, "Jobs may only write outputs under this folder")
      ->required(f.output_root.empty());
  app.add_option("--metrics-listen", f.metrics_listen, "Prometheus /metrics address (off if empty)");
  app.add_option("--lease-ttl", f.lease_ttl, "Lease time to live")->capture_default_str();
  app.add_option("--heartbeat-interval", f.heartbeat_interval, "Worker heartbeat period")->capture_default_str();
  app.add_option("--max-failures", f.max_failures, "Failures of one task that fail its job")->capture_default_str();
  app.add_option("--forget-workers-after", f.forget_workers_after,
                 "Drop a worker from `workers` once it has been silent this long (0: never)")
      ->capture_default_str();
  app.add_option("--max-shard-size", f.max_shard_size, "Largest output safetensors file")->capture_default_str();
  app.add_option("--retention", f.retention,
                 "Delete a finished job (and the blobs only it owns) this long after it ended (0: keep until "
                 "`shardpress delete`)")
      ->capture_default_str();
  app.add_option("--import", f.import_mode,
                 "reference: read each job's model in place, checked against the digests taken at import (no "
                 "copy); copy: keep a copy in the data dir (the model folder may change or go away during jobs)")
      ->capture_default_str();
  app.add_option("--test-hooks", f.test_hooks, "")->group("");  // hidden: end-to-end tests only
  app.add_option("--min-free-space", f.min_free_space,
                 "Free space kept on the data dir's disk: writes that would go below are refused (a full disk can "
                 "abort RocksDB)")
      ->capture_default_str();
  app.add_option("--token-file", f.token_file, "Require this shared token on every call");
  app.add_option("--tls-cert", f.tls_cert, "TLS: PEM certificate chain of this coordinator");
  app.add_option("--tls-key", f.tls_key, "TLS: its private key");
  app.add_option("--tls-client-ca", f.tls_client_ca, "Mutual TLS: require client certificates signed by this CA");
  app.add_flag("--insecure", f.insecure, "Allow listening beyond loopback without a token or TLS");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  auto fail = [](const absl::Status& s, int code) {
    std::fprintf(stderr, "shardpress-coordinator: %s\n", std::string(s.message()).c_str());
    return code;
  };
  sp::RuntimeOptions o;
  o.listen = f.listen;
  o.metrics_listen = f.metrics_listen;
  o.handle_signals = true;
  o.core.data_dir = f.data_dir;
  o.core.model_root = f.model_root;
  o.core.output_root = f.output_root;
  o.core.log = [](const std::string& line) { sp::log_line(stderr, "shardpress-coordinator", line); };
  const int max_failures = std::atoi(f.max_failures.c_str());
  if (max_failures < 1) return fail(absl::InvalidArgumentError("--max-failures must be a positive integer"), 2);
  o.core.max_failures = static_cast<uint32_t>(max_failures);
  auto ttl = sp::parse_duration_ms(f.lease_ttl);
  if (!ttl.ok()) return fail(sp::annotate(ttl.status(), "--lease-ttl"), 2);
  auto hb = sp::parse_duration_ms(f.heartbeat_interval);
  if (!hb.ok()) return fail(sp::annotate(hb.status(), "--heartbeat-interval"), 2);
  auto shard = sp::parse_byte_size(f.max_shard_size);
  if (!shard.ok()) return fail(sp::annotate(shard.status(), "--max-shard-size"), 2);
  auto min_free = sp::parse_byte_size(f.min_free_space);
  if (!min_free.ok()) return fail(sp::annotate(min_free.status(), "--min-free-space"), 2);
  o.core.min_free_bytes = *min_free;
  auto retention = sp::parse_duration_ms(f.retention);
  if (!retention.ok()) return fail(sp::annotate(retention.status(), "--retention"), 2);
  o.core.retention_ms = *retention;
  if (f.import_mode != "reference" && f.import_mode != "copy")
    return fail(absl::InvalidArgumentError(fmt::format("--import: '{}' is not reference or copy", f.import_mode)), 2);
  o.core.copy_models = f.import_mode == "copy";
  auto hooks = sp::parse_test_hooks(f.test_hooks);
  if (!hooks.ok()) return fail(hooks.status(), 2);
  o.core.test = {hooks->import_delay_ms, hooks->assemble_delay_ms, hooks->enospc_after_bytes};
  auto forget = sp::parse_duration_ms(f.forget_workers_after);
  if (!forget.ok()) return fail(sp::annotate(forget.status(), "--forget-workers-after"), 2);
  o.core.forget_workers_after_ms = *forget;
  o.core.lease_ttl_ms = *ttl;
  o.core.heartbeat_interval_ms = *hb;
  o.core.max_shard_bytes = *shard;
  if (!f.token_file.empty()) {
    auto token = sp::read_token_file(f.token_file);
    if (!token.ok()) return fail(token.status(), 2);
    o.token = *token;
  }
  o.tls = {f.tls_cert, f.tls_key, f.tls_client_ca};
  if (!is_loopback(f.listen) && o.token.empty() && f.tls_cert.empty()) {
    if (!f.insecure)
      return fail(absl::InvalidArgumentError(fmt::format(
                      "refusing to listen on {} without --token-file or TLS: anyone on the network could submit "
                      "jobs and read models (pass --insecure to do it anyway)",
                      f.listen)),
                  2);
    std::fprintf(stderr, "shardpress-coordinator: WARNING: listening on %s without a token or TLS (--insecure)\n",
                 f.listen.c_str());
  }
  std::error_code ec;
  for (const std::string* d : {&f.model_root, &f.output_root})
    if (!std::filesystem::is_directory(*d, ec)) return fail(absl::NotFoundError(*d + ": not a folder"), 2);

  sp::SystemClock clock;
  auto rt = sp::CoordinatorRuntime::start(o, clock);
  if (!rt.ok()) {
    // The data dir or the address in use, not a folder, bad settings: the caller's to fix.
    const bool bad_input = absl::IsInvalidArgument(rt.status()) || absl::IsNotFound(rt.status()) ||
                           absl::IsFailedPrecondition(rt.status());
    return fail(rt.status(), bad_input ? 2 : 1);
  }
  std::fprintf(stderr, "shardpress-coordinator: listening on %s, state in %s%s\n", (*rt)->address().c_str(),
               f.data_dir.c_str(),
               (*rt)->metrics_address().empty() ? "" : (", metrics on http://" + (*rt)->metrics_address() + "/metrics").c_str());
  const int sig = (*rt)->wait_for_signal();
  std::fprintf(stderr, "shardpress-coordinator: signal %d, shutting down\n", sig);
  (*rt)->stop();
  return 0;
}
