#include "coordinator/runtime.h"

#include <filesystem>

#include "common/file_util.h"
#include "fmt/format.h"

namespace sp {

absl::StatusOr<std::unique_ptr<CoordinatorRuntime>> CoordinatorRuntime::start(RuntimeOptions options,
                                                                              const Clock& clock) {
  std::unique_ptr<CoordinatorRuntime> r(new CoordinatorRuntime());
  r->options_ = std::move(options);
  SP_RETURN_IF_ERROR(check_address_free(r->options_.listen));  // before the data dir is touched
  auto lock = DirLock::acquire(r->options_.core.data_dir, r->options_.owner + " (starting)");
  if (!lock.ok()) return annotate(lock.status(), "data dir");
  r->data_dir_lock_ = std::move(*lock);
  SP_ASSIGN_OR_RETURN(r->core_, Coordinator::open(r->options_.core, clock));  // recover before serving
  SP_ASSIGN_OR_RETURN(auto credentials, server_credentials(r->options_.tls));
  SP_ASSIGN_OR_RETURN(r->server_, CoordinatorServer::start(r->core_.get(), r->options_.listen, r->options_.token,
                                                           credentials));
  if (!r->options_.metrics_listen.empty()) {
    // HTTPS with the coordinator's own certificate when it has one (the cookie then Secure).
    r->web_ = std::make_unique<WebApi>(*r->core_, WebOptions{r->options_.token, !r->options_.tls.cert.empty()});
    SP_ASSIGN_OR_RETURN(r->metrics_,
                        HttpServer::start(r->io_, r->options_.metrics_listen,
                                          [web = r->web_.get()](const HttpRequest& q) { return web->handle(q); },
                                          r->options_.tls));
  }
  r->expiry_ = std::make_unique<boost::asio::steady_timer>(r->io_);
  r->arm_expiry();
  if (r->options_.handle_signals) {
    r->signals_ = std::make_unique<boost::asio::signal_set>(r->io_, SIGINT, SIGTERM);
    r->signals_->async_wait([rt = r.get()](const boost::system::error_code& ec, int sig) {
      if (!ec) rt->signal_.set_value(sig);
    });
  }
  r->io_thread_ = std::thread([rt = r.get()] { rt->io_.run(); });
  r->core_->start();
  r->data_dir_lock_.describe(r->options_.owner + ", listening on " + r->address());
  const std::filesystem::path data(r->options_.core.data_dir);
  // coordinator.addr last: scripts and tests wait for it, then read the other.
  if (r->metrics_)
    SP_RETURN_IF_ERROR(write_file_atomic((data / "metrics.addr").string(), r->metrics_address() + "\n"));
  SP_RETURN_IF_ERROR(write_file_atomic((data / "coordinator.addr").string(), r->address() + "\n"));
  return r;
}

void CoordinatorRuntime::arm_expiry() {
  // Check leases a few times per TTL (at least every second).
  const int64_t every = std::max<int64_t>(50, std::min<int64_t>(1000, options_.core.lease_ttl_ms / 4));
  expiry_->expires_after(std::chrono::milliseconds(every));
  expiry_->async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    core_->expire_leases();
    arm_expiry();
  });
}

int CoordinatorRuntime::wait_for_signal() { return signal_.get_future().get(); }

void CoordinatorRuntime::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (server_) server_->shutdown();
  if (core_) core_->stop();
  io_.stop();
  if (io_thread_.joinable()) io_thread_.join();
}

CoordinatorRuntime::~CoordinatorRuntime() { stop(); }

}  // namespace sp
