#include "coordinator/web_api.h"

#include <map>

#include "common/token.h"
#include "common/xml_escape.h"
#include "coordinator/coordinator.h"
#include "fmt/format.h"
#include "jobs/sweep_report.h"
#include "proto/json.h"

namespace sp {

using namespace shardpress::v1;  // NOLINT: the message types

namespace {

constexpr char kCookieName[] = "shardpress_token";
constexpr char kJson[] = "application/json";
constexpr char kHtml[] = "text/html; charset=utf-8";

HttpResponse json_response(const google::protobuf::Message& m) { return {200, kJson, to_json(m) + "\n", {}}; }

HttpResponse error_response(int status, const std::string& message) {
  nlohmann::ordered_json j;
  j["error"] = message;
  return {status, kJson, j.dump() + "\n", {}};
}

HttpResponse status_error(const absl::Status& st) {
  const int code = absl::IsNotFound(st) ? 404 : absl::IsInvalidArgument(st) ? 400 : 500;
  return error_response(code, std::string(st.message()));
}

// %XX decoded (and '+' as a space in form values).
std::string percent_decode(const std::string& in, bool plus_is_space) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+' && plus_is_space) {
      out += ' ';
    } else if (in[i] == '%' && i + 2 < in.size() && std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      out += static_cast<char>(std::stoi(in.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

// application/x-www-form-urlencoded: the value of `key`, decoded.
std::string form_value(const std::string& body, const std::string& key) {
  size_t at = 0;
  while (at <= body.size()) {
    const size_t end = std::min(body.find('&', at), body.size());
    const std::string pair = body.substr(at, end - at);
    if (pair.rfind(key + "=", 0) == 0) return percent_decode(pair.substr(key.size() + 1), true);
    at = end + 1;
  }
  return "";
}

// What the cookie carries: the token in hex, so that any token (spaces, ';', quotes) is a
// valid cookie value.
std::string cookie_form(std::string_view token) {
  std::string out;
  for (unsigned char c : token) out += fmt::format("{:02x}", c);
  return out;
}

// The value of cookie `name` in a Cookie header.
std::string cookie_value(const std::string& header, const std::string& name) {
  size_t at = 0;
  while (at < header.size()) {
    while (at < header.size() && header[at] == ' ') ++at;
    const size_t end = std::min(header.find(';', at), header.size());
    const std::string pair = header.substr(at, end - at);
    if (pair.rfind(name + "=", 0) == 0) return pair.substr(name.size() + 1);
    at = end + 1;
  }
  return "";
}

}  // namespace

std::string login_page_html(const std::string& message) {
  return fmt::format(R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shardpress: sign in</title>
<style>body{{font:15px system-ui,sans-serif;margin:4em auto;max-width:26em;color:#222}}
input{{font:inherit;padding:.3em;width:100%;box-sizing:border-box;margin:.4em 0}}
.msg{{color:#b00020}}</style></head>
<body><h1>shardpress</h1>
<p>This coordinator needs its token (the contents of its <code>--token-file</code>).</p>
<p class="msg" id="login-message">{}</p>
<form method="post" action="/login"><label>Token <input type="password" name="token" id="token" autocomplete="current-password"></label>
<input type="submit" value="Sign in" id="sign-in"></form></body></html>
)",
                     xml_escape(message));
}

bool WebApi::signed_in(const HttpRequest& r) const {
  if (options_.token.empty()) return true;
  if (r.authorization.rfind("Bearer ", 0) == 0) return constant_time_equal(r.authorization.substr(7), options_.token);
  const std::string cookie = cookie_value(r.cookie, kCookieName);
  return !cookie.empty() && constant_time_equal(cookie, cookie_form(options_.token));
}

HttpResponse WebApi::handle(const HttpRequest& r) const {
  const std::string path = r.target.substr(0, r.target.find('?'));
  if (r.method == "GET" && path == "/metrics")
    return {200, "text/plain; version=0.0.4", core_.metrics_text(), {}};
  if (r.method == "POST" && path == "/login") {
    const std::string token = form_value(r.body, "token");
    if (options_.token.empty() || (!token.empty() && constant_time_equal(token, options_.token))) {
      HttpResponse ok{303, kHtml, "", {{"Location", "/"}}};
      if (!options_.token.empty())
        ok.headers["Set-Cookie"] = fmt::format("{}={}; Path=/; HttpOnly; SameSite=Strict{}", kCookieName,
                                               cookie_form(token), options_.secure_cookie ? "; Secure" : "");
      return ok;
    }
    return {401, kHtml, login_page_html("That is not this coordinator's token."), {}};
  }
  if (r.method != "GET") return error_response(405, "the status page is read-only: GET only (and POST /login)");
  if (path == "/" || path == "/index.html") {
    if (!signed_in(r)) return {401, kHtml, login_page_html(""), {}};
    return {200, kHtml, kStatusPageHtml, {}};
  }
  if (path.rfind("/api/", 0) != 0) return error_response(404, "no such page: try / or /api/jobs");
  if (!signed_in(r)) return error_response(401, "sign in at / (or send Authorization: Bearer TOKEN)");
  if (path == "/api/jobs") {
    ListJobsResponse out;
    for (auto& j : core_.list_jobs()) *out.add_jobs() = std::move(j);
    return json_response(out);
  }
  if (path == "/api/sweeps") {  // jobs named SWEEP.VARIANT (two or more): `shardpress report SWEEP`
    std::map<std::string, std::vector<std::string>> sweeps;  // name -> its jobs' ids
    for (const auto& j : core_.list_jobs()) {
      const size_t dot = j.spec().name().find('.');
      if (dot != std::string::npos && dot > 0 && j.evaluates().empty())
        sweeps[j.spec().name().substr(0, dot)].push_back(j.id());
    }
    nlohmann::ordered_json out;
    out["sweeps"] = nlohmann::json::array();
    for (const auto& [name, ids] : sweeps) {
      if (ids.size() < 2) continue;
      std::vector<ReportRow> rows;
      for (const auto& id : ids)
        if (auto s = core_.job_status(id); s.ok()) rows.push_back(report_row(*s, s->spec().name().substr(name.size() + 1)));
      nlohmann::ordered_json sweep;
      sweep["name"] = name;
      sweep["report"] = nlohmann::ordered_json::parse(report_json(name, rows));
      sweep["svg"] = report_svg(name, rows);
      out["sweeps"].push_back(std::move(sweep));
    }
    return {200, kJson, out.dump() + "\n", {}};
  }
  if (path == "/api/workers") {
    ListWorkersResponse out;
    for (auto& w : core_.workers()) *out.add_workers() = std::move(w);
    return json_response(out);
  }
  constexpr std::string_view kJobs = "/api/jobs/";
  if (path.rfind(kJobs, 0) == 0) {
    std::string ref = percent_decode(path.substr(kJobs.size()), false);
    const bool events = ref.size() > 7 && ref.ends_with("/events");
    if (events) ref.resize(ref.size() - 7);
    if (ref.empty() || ref.find('/') != std::string::npos) return error_response(404, "no such API path");
    if (events) {
      auto ev = core_.events(ref);
      if (!ev.ok()) return status_error(ev.status());
      ListEventsResponse out;
      for (auto& e : *ev) *out.add_events() = std::move(e);
      return json_response(out);
    }
    auto s = core_.job_status(ref);
    if (!s.ok()) return status_error(s.status());
    return json_response(*s);
  }
  return error_response(404, "no such API path");
}

}  // namespace sp
