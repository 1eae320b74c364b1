// The status page and its JSON API, as a plain function of an HTTP request (the bytes move
// in coordinator/http_server). Read-only: nothing here changes a job.
//
//   GET  /                      the status page (static HTML + script, no external files);
//                               with a token configured and none presented: the login form
//   POST /login                 form field `token`: right, a cookie (HttpOnly, SameSite=Strict,
//                               Secure when `secure_cookie`) and 303 to /; wrong, 401 and the form
//   GET  /api/jobs              what `shardpress list -o json` prints
//   GET  /api/jobs/JOB          what `shardpress status JOB -o json` prints
//   GET  /api/jobs/JOB/events   what `shardpress events JOB -o json` prints
//   GET  /api/workers           what `shardpress workers -o json` prints
//   GET  /api/sweeps            every sweep (jobs named SWEEP.VARIANT, two or more): its
//                               `shardpress report SWEEP -o json` and its plot (SVG text)
//   GET  /metrics               Prometheus text (open, as before: scrapers carry no cookie)
//
// With a token, the page and every /api/ call need it: the cookie from /login or an
// `Authorization: Bearer TOKEN` header (compared in constant time; never logged or echoed).
//
// Thread-safety: handle() may run on any thread (the Coordinator locks itself).
#pragma once

#include <string>

#include "coordinator/http_server.h"

namespace sp {

class Coordinator;

struct WebOptions {
  std::string token;           // empty: no sign-in
  bool secure_cookie = false;  // the page is served over TLS
};

class WebApi {
 public:
  WebApi(Coordinator& core, WebOptions options) : core_(core), options_(std::move(options)) {}
  HttpResponse handle(const HttpRequest& r) const;

 private:
  bool signed_in(const HttpRequest& r) const;
  Coordinator& core_;
  WebOptions options_;
};

// The page's HTML (status_page.cc) and the login form (`message`: why it is shown again).
extern const char kStatusPageHtml[];
std::string login_page_html(const std::string& message);

}  // namespace sp
