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
  // Binds "HOST:PORT" (port 0 picks one) and starts accepting on `io`.
  static absl::StatusOr<std::unique_ptr<HttpServer>> start(boost::asio::io_context& io, const std::string& listen,
                                                           HttpHandler handler);
  std::string address() const;

 private:
  HttpServer(boost::asio::io_context& io, HttpHandler handler) : acceptor_(io), handler_(std::move(handler)) {}
  void accept();
  boost::asio::ip::tcp::acceptor acceptor_;
  HttpHandler handler_;
};

}  // namespace sp
