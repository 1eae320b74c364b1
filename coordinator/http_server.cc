#include "coordinator/http_server.h"

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
  Session(tcp::socket socket, const HttpHandler& handler) : stream_(std::move(socket)), handler_(handler) {}
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
    HttpRequest req;
    req.method = std::string(request_.method_string());
    req.target = std::string(request_.target());
    req.cookie = std::string(request_[http::field::cookie]);
    req.authorization = std::string(request_[http::field::authorization]);
    req.body = request_.body();
    HttpResponse r;
    try {
      r = handler_(req);
    } catch (const std::exception& e) {  // a bug must not take the daemon down
      r = HttpResponse{500, "text/plain; charset=utf-8", std::string("internal error: ") + e.what() + "\n", {}};
    }
    response_.result(static_cast<http::status>(r.status));
    response_.set(http::field::content_type, r.content_type);
    response_.set(http::field::cache_control, "no-store");
    for (const auto& [k, v] : r.headers) response_.set(k, v);
    response_.body() = std::move(r.body);
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
  const HttpHandler& handler_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::start(boost::asio::io_context& io, const std::string& listen,
                                                              HttpHandler handler) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return absl::InvalidArgumentError(fmt::format("'{}' is not HOST:PORT", listen));
  boost::system::error_code ec;
  const auto addr = boost::asio::ip::make_address(listen.substr(0, colon), ec);
  if (ec) return absl::InvalidArgumentError(fmt::format("'{}': {}", listen, ec.message()));
  const auto port = static_cast<unsigned short>(std::stoi(listen.substr(colon + 1)));
  std::unique_ptr<HttpServer> s(new HttpServer(io, std::move(handler)));
  tcp::endpoint ep(addr, port);
  s->acceptor_.open(ep.protocol(), ec);
  if (!ec) s->acceptor_.set_option(boost::asio::socket_base::reuse_address(true), ec);
  if (!ec) s->acceptor_.bind(ep, ec);
  if (!ec) s->acceptor_.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec) return absl::UnavailableError(fmt::format("http: cannot listen on {}: {}", listen, ec.message()));
  s->accept();
  return s;
}

std::string HttpServer::address() const {
  const auto ep = acceptor_.local_endpoint();
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

void HttpServer::accept() {
  acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec) return;  // acceptor closed
    std::make_shared<Session>(std::move(socket), handler_)->run();
    accept();
  });
}

}  // namespace sp
