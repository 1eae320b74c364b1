// Prometheus text exposition over HTTP (Boost.Beast), served on an Asio io_context:
// GET /metrics returns render(); anything else is 404.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace sp {

class MetricsServer {
 public:
  // Binds "HOST:PORT" (port 0 picks one) and starts accepting on `io`.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> start(boost::asio::io_context& io, const std::string& listen,
                                                              std::function<std::string()> render);
  std::string address() const;

 private:
  MetricsServer(boost::asio::io_context& io, std::function<std::string()> render)
      : acceptor_(io), render_(std::move(render)) {}
  void accept();
  boost::asio::ip::tcp::acceptor acceptor_;
  std::function<std::string()> render_;
};

}  // namespace sp
