#include "coordinator/http_server.h"

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "fmt/format.h"

namespace sp {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

// One HTTP exchange over `Stream` (beast::tcp_stream, or beast::ssl_stream of one);
// keeps itself alive through the async callbacks.
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  template <class... Args>
  Session(const HttpHandler& handler, Args&&... args) : stream_(std::forward<Args>(args)...), handler_(handler) {}

  void run() {
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(10));
    if constexpr (kTls) {
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (!ec) self->read();  // a failed handshake: the connection just ends
                              });
    } else {
      read();
    }
  }

 private:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  void read() {
    http::async_read(stream_, buffer_, request_,
                     [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

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
    http::async_write(stream_, response_, [self = this->shared_from_this()](beast::error_code, size_t) {
      self->close();
    });
  }

  void close() {
    if constexpr (kTls) {
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {});
    } else {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  const HttpHandler& handler_;
};

}  // namespace

HttpServer::HttpServer(boost::asio::io_context& io, HttpHandler handler) : acceptor_(io), handler_(std::move(handler)) {}
HttpServer::~HttpServer() = default;

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::start(boost::asio::io_context& io, const std::string& listen,
                                                              HttpHandler handler, const TlsServerFiles& tls) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return absl::InvalidArgumentError(fmt::format("'{}' is not HOST:PORT", listen));
  boost::system::error_code ec;
  const auto addr = boost::asio::ip::make_address(listen.substr(0, colon), ec);
  if (ec) return absl::InvalidArgumentError(fmt::format("'{}': {}", listen, ec.message()));
  const auto port = static_cast<unsigned short>(std::stoi(listen.substr(colon + 1)));
  std::unique_ptr<HttpServer> s(new HttpServer(io, std::move(handler)));
  if (!tls.cert.empty()) {  // the coordinator's own certificate and key, as its RPCs use them
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                     ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    ctx->use_certificate_chain_file(tls.cert, ec);
    if (!ec) ctx->use_private_key_file(tls.key, ssl::context::pem, ec);
    if (!ec && !tls.client_ca.empty()) {  // mutual TLS, as for the RPCs
      ctx->load_verify_file(tls.client_ca, ec);
      ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    }
    if (ec) return absl::InvalidArgumentError(fmt::format("http: the TLS certificate or key: {}", ec.message()));
    s->tls_ = std::move(ctx);
  }
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
    if (tls_)
      std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(handler_, std::move(socket), *tls_)->run();
    else
      std::make_shared<Session<beast::tcp_stream>>(handler_, std::move(socket))->run();
    accept();
  });
}

}  // namespace sp
