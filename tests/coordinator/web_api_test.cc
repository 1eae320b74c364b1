// The status page's routes as a plain function of a request (no network): sign-in and its
// cookie (any token, even one with spaces and ';'), 401 without it, the API's answers equal
// to what -o json prints, errors as JSON, read-only.
#include "coordinator/web_api.h"

#include <gtest/gtest.h>

#include "nlohmann/json.hpp"
#include "proto/json.h"
#include "tests/coordinator/test_lab.h"

namespace sp {
namespace {

using json = nlohmann::json;
using namespace shardpress::v1;  // NOLINT

class WebApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Coordinator::open(lab_.options(), clock_);
    ASSERT_TRUE(c.ok()) << c.status();
    core_ = std::move(*c);
  }
  static HttpRequest get(const std::string& target, const std::string& cookie = "", const std::string& auth = "") {
    return {"GET", target, cookie, auth, ""};
  }
  test::CoordinatorLab lab_;
  FakeClock clock_;
  std::unique_ptr<Coordinator> core_;
};

TEST_F(WebApiTest, SignInSetsACookieThatOpensThePageAndTheApi) {
  const std::string token = "a token; with \"quotes\" and spaces";
  WebApi web(*core_, {token, false});
  EXPECT_EQ(web.handle(get("/")).status, 401);
  EXPECT_NE(web.handle(get("/")).body.find("needs its token"), std::string::npos);
  EXPECT_EQ(web.handle(get("/api/jobs")).status, 401);
  EXPECT_EQ(web.handle({"POST", "/login", "", "", "token=wrong"}).status, 401);
  // A form posts the token URL-encoded.
  const HttpResponse in = web.handle({"POST", "/login", "", "", "token=a+token%3B+with+%22quotes%22+and+spaces"});
  ASSERT_EQ(in.status, 303);
  EXPECT_EQ(in.headers.at("Location"), "/");
  const std::string set = in.headers.at("Set-Cookie");
  EXPECT_NE(set.find("; Path=/; HttpOnly; SameSite=Strict"), std::string::npos) << set;
  EXPECT_EQ(set.find("Secure"), std::string::npos) << "plain HTTP";
  EXPECT_EQ(set.find(token), std::string::npos) << "the cookie never holds the raw token";
  const std::string cookie = "other=1; " + set.substr(0, set.find(';'));
  EXPECT_EQ(web.handle(get("/", cookie)).status, 200);
  EXPECT_EQ(web.handle(get("/", cookie)).body, kStatusPageHtml);
  EXPECT_EQ(web.handle(get("/api/jobs", cookie)).status, 200);
  EXPECT_EQ(web.handle(get("/api/jobs", "shardpress_token=00")).status, 401);
  EXPECT_EQ(web.handle(get("/api/jobs", "", "Bearer " + token)).status, 200);
  EXPECT_EQ(web.handle(get("/api/jobs", "", "Bearer wrong")).status, 401);
  EXPECT_EQ(web.handle(get("/metrics")).status, 200) << "open to scrapers";
  WebApi tls(*core_, {token, true});
  EXPECT_NE(tls.handle({"POST", "/login", "", "", "token=" + std::string("a+token%3B+with+%22quotes%22+and+spaces")})
                .headers.at("Set-Cookie")
                .find("; Secure"),
            std::string::npos);
}

TEST_F(WebApiTest, TheApiAnswersWhatJsonOutputPrints) {
  WebApi web(*core_, {});
  auto submitted = core_->submit(lab_.job("first", "first"));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const HttpResponse jobs = web.handle(get("/api/jobs"));
  ASSERT_EQ(jobs.status, 200);
  EXPECT_EQ(jobs.content_type, "application/json");
  ListJobsResponse expected;
  for (auto& j : core_->list_jobs()) *expected.add_jobs() = j;
  EXPECT_EQ(json::parse(jobs.body), json::parse(to_json(expected)));
  const HttpResponse one = web.handle(get("/api/jobs/first"));
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(json::parse(one.body)["id"], submitted->id());
  EXPECT_EQ(json::parse(web.handle(get("/api/jobs/" + submitted->id() + "/events")).body)["events"].size(),
            core_->events("first")->size());
  EXPECT_TRUE(json::parse(web.handle(get("/api/workers")).body).contains("workers"));
  const HttpResponse missing = web.handle(get("/api/jobs/no%20such"));
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(json::parse(missing.body)["error"].get<std::string>().find("no such"), std::string::npos) << missing.body;
  EXPECT_EQ(web.handle(get("/api/jobs/a/b")).status, 404);
  EXPECT_EQ(web.handle(get("/nowhere")).status, 404);
  EXPECT_EQ(web.handle({"POST", "/api/jobs", "", "", ""}).status, 405) << "read-only";
  EXPECT_EQ(web.handle({"DELETE", "/api/jobs/first", "", "", ""}).status, 405);
  EXPECT_EQ(web.handle(get("/")).status, 200) << "no token configured: no sign-in";
  // Jobs named SWEEP.VARIANT: the sweep's report (as `shardpress report -o json`) and its plot.
  EXPECT_TRUE(json::parse(web.handle(get("/api/sweeps")).body)["sweeps"].empty()) << "one job is no sweep";
  ASSERT_TRUE(core_->submit(lab_.job("sw.a", "sw-a")).ok());
  ASSERT_TRUE(core_->submit(lab_.job("sw.b", "sw-b")).ok());
  const json sweeps = json::parse(web.handle(get("/api/sweeps")).body)["sweeps"];
  ASSERT_EQ(sweeps.size(), 1u) << sweeps.dump();
  EXPECT_EQ(sweeps[0]["name"], "sw");
  EXPECT_EQ(sweeps[0]["report"]["variants"].size(), 2u);
  EXPECT_EQ(sweeps[0]["report"]["variants"][1]["variant"], "b");
  EXPECT_EQ(sweeps[0]["svg"].get<std::string>().rfind("<?xml", 0), 0u);
}

}  // namespace
}  // namespace sp
