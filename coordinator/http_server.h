// The coordinator's HTTP endpoint (Boost.Beast on an Asio io_context): one request per
// connection, each handed to a plain handler function — the status page and its JSON API
// (coordinator/web_api) and Prometheus' /metrics. The handler does the work; this class
// only moves bytes.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/status.h"
#include "proto/credentials.h"

namespace boost::asio::ssl {
class context;
}

namespace sp {

struct HttpRequest {
  std::string method;  // "GET", "POST"
  std::string target;  // "/api/jobs?x=1"
  std::string cookie;  // the Cookie header
  std::string authorization;
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::map<std::string, std::string> headers;  // more headers (Set-Cookie, Location, ...)
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

class HttpServer {
 public:
  // Binds "HOST:PORT" (port 0 picks one) and starts accepting on `io`: HTTPS with `tls`'s
  // certificate and key when it has them (and client certificates required when it has
  // a client CA, as for the RPCs), else plain HTTP.
  static absl::StatusOr<std::unique_ptr<HttpServer>> start(boost::asio::io_context& io, const std::string& listen,
                                                           HttpHandler handler, const TlsServerFiles& tls = {});
  ~HttpServer();
  std::string address() const;
  bool tls() const { return tls_ != nullptr; }

 private:
  HttpServer(boost::asio::io_context& io, HttpHandler handler);
  void accept();
  boost::asio::ip::tcp::acceptor acceptor_;
  HttpHandler handler_;
  std::unique_ptr<boost::asio::ssl::context> tls_;
};

}  // namespace sp
