#include "coordinator/metrics_server.h"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "fmt/format.h"

namespace sp {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

// One HTTP exchange; keeps itself alive through the async callbacks.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const std::function<std::string()>& render)
      : stream_(std::move(socket)), render_(render) {}
  void run() {
    stream_.expires_after(std::chrono::seconds(10));
    http::async_read(stream_, buffer_, request_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

 private:
  void on_read(beast::error_code ec) {
    if (ec) return;
    response_.version(request_.version());
    response_.keep_alive(false);
    if (request_.method() == http::verb::get && request_.target() == "/metrics") {
      response_.result(http::status::ok);
      response_.set(http::field::content_type, "text/plain; version=0.0.4");
      response_.body() = render_();
    } else {
      response_.result(http::status::not_found);
      response_.body() = "try /metrics\n";
    }
    response_.prepare_payload();
    http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code, size_t) {
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    });
  }
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  const std::function<std::string()>& render_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::start(boost::asio::io_context& io,
                                                                    const std::string& listen,
                                                                    std::function<std::string()> render) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return absl::InvalidArgumentError(fmt::format("'{}' is not HOST:PORT", listen));
  boost::system::error_code ec;
  const auto addr = boost::asio::ip::make_address(listen.substr(0, colon), ec);
  if (ec) return absl::InvalidArgumentError(fmt::format("'{}': {}", listen, ec.message()));
  const auto port = static_cast<unsigned short>(std::stoi(listen.substr(colon + 1)));
  std::unique_ptr<MetricsServer> s(new MetricsServer(io, std::move(render)));
  tcp::endpoint ep(addr, port);
  s->acceptor_.open(ep.protocol(), ec);
  if (!ec) s->acceptor_.set_option(boost::asio::socket_base::reuse_address(true), ec);
  if (!ec) s->acceptor_.bind(ep, ec);
  if (!ec) s->acceptor_.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec) return absl::UnavailableError(fmt::format("metrics: cannot listen on {}: {}", listen, ec.message()));
  s->accept();
  return s;
}

std::string MetricsServer::address() const {
  const auto ep = acceptor_.local_endpoint();
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

void MetricsServer::accept() {
  acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec) return;  // acceptor closed
    std::make_shared<Session>(std::move(socket), render_)->run();
    accept();
  });
}

}  // namespace sp
