// The dashboard's request handling without a browser or a federation: who
// gets in, and what a bad request gets back. tests/dashboard_test.sh covers
// the page against real nodes.
#include "client/dashboard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"

namespace fedshare::client {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Pair;

constexpr int kPort = 40123;  // only compared with Host headers; nothing listens
const std::string kToken(48, 'a');

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A port that refuses connections: bound, never listening, held until
    // the test ends so nothing else takes it.
    refuser_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(refuser_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    getsockname(refuser_, reinterpret_cast<sockaddr*>(&addr), &len);
    node_ = std::make_unique<NodeClient>(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", ntohs(addr.sin_port)), grpc::InsecureChannelCredentials()));
    node_->set_timeout(absl::Seconds(5));
    history_ = ::testing::TempDir();
    dashboard_ =
        std::make_unique<Dashboard>(node_.get(), "127.0.0.1:7444", kToken, kPort, history_, 0);
  }
  void TearDown() override { close(refuser_); }

  HttpRequest Request(const std::string& method, const std::string& path) {
    HttpRequest r;
    r.method = method;
    r.path = path;
    r.headers["host"] = absl::StrCat("127.0.0.1:", kPort);
    return r;
  }
  HttpRequest Api(const std::string& method, const std::string& path, const std::string& body) {
    HttpRequest r = Request(method, path);
    r.headers["x-fedshare-token"] = kToken;
    r.body = body;
    return r;
  }

  int refuser_ = -1;
  std::unique_ptr<NodeClient> node_;
  std::string history_;
  std::unique_ptr<Dashboard> dashboard_;
};

TEST_F(DashboardTest, RefusesEveryRequestWithoutTheToken) {
  for (const char* path :
       {"/", "/index.html", "/app.js", "/d3.min.js", "/api/describe", "/api/history", "/nope"}) {
    EXPECT_EQ(dashboard_->Handle(Request("GET", path)).status, 403) << path;
  }
  HttpRequest wrong = Request("GET", "/");
  wrong.query["token"] = std::string(48, 'b');
  EXPECT_EQ(dashboard_->Handle(wrong).status, 403);
  HttpRequest short_token = Request("GET", "/");
  short_token.query["token"] = "a";
  EXPECT_EQ(dashboard_->Handle(short_token).status, 403);
}

TEST_F(DashboardTest, ServesThePageWithTheTokenAndSetsAStrictCookie) {
  HttpRequest r = Request("GET", "/");
  r.query["token"] = kToken;
  HttpResponse page = dashboard_->Handle(r);
  EXPECT_EQ(page.status, 200);
  EXPECT_THAT(page.content_type, HasSubstr("text/html"));
  EXPECT_THAT(page.body, HasSubstr("<script src=\"/d3.min.js\""));
  EXPECT_THAT(page.headers,
              Contains(Pair("Set-Cookie", absl::StrCat("fedshare_dashboard_", kPort, "=", kToken,
                                                       "; Path=/; HttpOnly; SameSite=Strict"))));
  EXPECT_THAT(page.headers,
              Contains(Pair("Content-Security-Policy", HasSubstr("script-src 'self'"))));

  HttpRequest script = Request("GET", "/d3.min.js");
  script.headers["cookie"] = absl::StrCat("other=1; fedshare_dashboard_", kPort, "=", kToken);
  HttpResponse d3 = dashboard_->Handle(script);
  EXPECT_EQ(d3.status, 200);
  EXPECT_GT(d3.body.size(), 100000u);  // the chart library itself, embedded
}

TEST_F(DashboardTest, TheCookieAloneDoesNotOpenTheApi) {
  HttpRequest r = Request("GET", "/api/history");
  r.headers["cookie"] = absl::StrCat("fedshare_dashboard_", kPort, "=", kToken);
  EXPECT_EQ(dashboard_->Handle(r).status, 403);
}

TEST_F(DashboardTest, RefusesAnotherHost) {
  for (const std::string& host : {std::string("evil.example"), absl::StrCat("evil.example:", kPort),
                                  std::string("127.0.0.1:1"), std::string("")}) {
    HttpRequest r = Api("GET", "/api/history", "");
    r.headers["host"] = host;
    EXPECT_EQ(dashboard_->Handle(r).status, 403) << host;
  }
  HttpRequest localhost = Api("GET", "/api/history", "");
  localhost.headers["host"] = absl::StrCat("localhost:", kPort);
  EXPECT_EQ(dashboard_->Handle(localhost).status, 200);
}

TEST_F(DashboardTest, BadQuestionsAreRefusedBeforeTheNodeIsAsked) {
  HttpResponse sql = dashboard_->Handle(Api("POST", "/api/query", R"({"sql": "SELECT nope"})"));
  EXPECT_EQ(sql.status, 400);
  EXPECT_THAT(sql.body, HasSubstr(R"("code":"INVALID_ARGUMENT")"));
  EXPECT_THAT(sql.body, HasSubstr("at 1:12: expected"));  // the CLI's positioned message

  EXPECT_EQ(dashboard_->Handle(Api("POST", "/api/query", "not json")).status, 400);
  EXPECT_EQ(dashboard_->Handle(Api("POST", "/api/query", "{}")).status, 400);
  EXPECT_EQ(
      dashboard_->Handle(Api("POST", "/api/query", R"({"query": {"dataset": "d", "nope": 1}})"))
          .status,
      400);
  EXPECT_EQ(dashboard_
                ->Handle(Api("POST", "/api/query",
                             R"({"sql": "SELECT COUNT(*) FROM d PURPOSE 'p'",
                                       "deadline_ms": 1e12})"))
                .status,
            400);
  EXPECT_EQ(dashboard_->Handle(Api("GET", "/api/query", "")).status, 404);
}

TEST_F(DashboardTest, ANodeThatCannotBeReachedIsReportedAsAnError) {
  HttpResponse r = dashboard_->Handle(
      Api("POST", "/api/query", R"({"sql": "SELECT COUNT(*) FROM d PURPOSE 'p'"})"));
  EXPECT_EQ(r.status, 502);
  EXPECT_THAT(r.body, HasSubstr(R"("code":"UNAVAILABLE")"));
  EXPECT_EQ(dashboard_->Handle(Api("GET", "/api/describe", "")).status, 502);
}

TEST_F(DashboardTest, HistoryServesOnlyThisSessionsAnswersById) {
  EXPECT_EQ(dashboard_->Handle(Api("GET", "/api/history", "")).body, "{\"answers\":[]}\n");
  for (const char* id : {"../../etc/passwd", "x", ""}) {
    EXPECT_EQ(dashboard_->Handle(Api("GET", absl::StrCat("/api/history/", id), "")).status, 404)
        << id;
  }
}

TEST(DefaultHistoryDirTest, FollowsXdgStateHome) {
  setenv("XDG_STATE_HOME", "/tmp/state", 1);
  EXPECT_EQ(DefaultHistoryDir(), "/tmp/state/fedshare/answers");
  setenv("XDG_STATE_HOME", "relative", 1);  // the spec says to ignore a relative path
  setenv("HOME", "/home/ana", 1);
  EXPECT_EQ(DefaultHistoryDir(), "/home/ana/.local/state/fedshare/answers");
  unsetenv("XDG_STATE_HOME");
}

}  // namespace
}  // namespace fedshare::client
