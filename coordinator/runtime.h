// A running coordinator: the core, its gRPC server, and an Asio io_context that runs the
// lease-expiry timer, the HTTP server (status page, /metrics) and (optionally) SIGINT/SIGTERM handling. Used
// by the `shardpress-coordinator` daemon and embedded by `shardpress local`.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "common/dir_lock.h"
#include "coordinator/coordinator.h"
#include "coordinator/grpc_service.h"
#include "coordinator/http_server.h"
#include "coordinator/web_api.h"
#include "proto/credentials.h"

namespace sp {

struct RuntimeOptions {
  CoordinatorOptions core;
  std::string listen = "127.0.0.1:7070";
  std::string metrics_listen;  // the HTTP endpoint: status page, its API, /metrics (empty: none)
  std::string token;           // required on every RPC when set
  TlsServerFiles tls;          // TLS / mutual TLS when set
  bool handle_signals = false;
  std::string owner = "shardpress-coordinator";  // who holds the data dir, for a second process's error
};

class CoordinatorRuntime {
 public:
  // Claims the data dir (FAILED_PRECONDITION naming the holder when another process has
  // it; INVALID_ARGUMENT when it is not a folder), recovers state, then starts serving
  // (FAILED_PRECONDITION when the address is in use). Nothing is served unless all of it
  // succeeds. Writes the bound addresses for scripts and tests: DATA_DIR/metrics.addr (if
  // any) first, then DATA_DIR/coordinator.addr — once that exists, both do.
  static absl::StatusOr<std::unique_ptr<CoordinatorRuntime>> start(RuntimeOptions options, const Clock& clock);
  ~CoordinatorRuntime();

  const std::string& address() const { return server_->address(); }
  std::string metrics_address() const { return metrics_ ? metrics_->address() : ""; }
  Coordinator& core() { return *core_; }
  // Blocks until SIGINT/SIGTERM (handle_signals) and returns the signal number.
  int wait_for_signal();
  // Stops serving: gRPC first, then the job runner, then the io thread.
  void stop();

 private:
  CoordinatorRuntime() = default;
  void arm_expiry();
  RuntimeOptions options_;
  DirLock data_dir_lock_;
  std::unique_ptr<Coordinator> core_;
  std::unique_ptr<CoordinatorServer> server_;
  boost::asio::io_context io_;
  std::unique_ptr<boost::asio::steady_timer> expiry_;
  std::unique_ptr<boost::asio::signal_set> signals_;
  std::unique_ptr<WebApi> web_;  // what the HTTP endpoint serves
  std::unique_ptr<HttpServer> metrics_;
  std::promise<int> signal_;
  std::thread io_thread_;
  bool stopped_ = false;
};

}  // namespace sp
