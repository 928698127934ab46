#include "node/metrics/metrics.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/metrics/http_server.h"

namespace fedshare::metrics {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(MetricsTest, RendersCountersGaugesAndCumulativeHistograms) {
  Metrics m;
  m.DefineCounter("q_total", "Questions.");
  m.DefineGauge("g", "A gauge.");
  m.DefineHistogram("lat_seconds", "Latency.", {0.1, 1});
  m.Increment("q_total", {{"outcome", "answered"}});
  m.Increment("q_total", {{"outcome", "answered"}}, 2);
  m.Increment("q_total", {{"outcome", "re\"fused\n"}});
  m.Observe("lat_seconds", {{"peer", "a"}}, 0.05);
  m.Observe("lat_seconds", {{"peer", "a"}}, 0.5);
  m.Observe("lat_seconds", {{"peer", "a"}}, 5);
  m.AddCollector([](Metrics& self) { self.SetGauge("g", {}, 42.5); });
  m.Increment("undefined_total", {});  // ignored

  std::string text = m.Render();
  EXPECT_THAT(text, HasSubstr("# TYPE q_total counter\n"));
  EXPECT_THAT(text, HasSubstr("q_total{outcome=\"answered\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("q_total{outcome=\"re\\\"fused\\n\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("g 42.5\n"));
  EXPECT_THAT(text, HasSubstr("lat_seconds_bucket{peer=\"a\",le=\"0.1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("lat_seconds_bucket{peer=\"a\",le=\"1\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("lat_seconds_bucket{peer=\"a\",le=\"+Inf\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("lat_seconds_count{peer=\"a\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("lat_seconds_sum{peer=\"a\"} 5.55\n"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("undefined_total")));
}

TEST(MetricsTest, ReadsBackSamplesMatchingSomeLabels) {
  Metrics m;
  m.DefineCounter("q_total", "Questions.");
  m.DefineGauge("g", "A gauge.");
  m.Increment("q_total", {{"outcome", "answered"}, {"rule", ""}}, 3);
  m.Increment("q_total", {{"outcome", "refused"}, {"rule", "purpose"}}, 2);
  m.Increment("q_total", {{"outcome", "refused"}, {"rule", "rate"}});
  m.AddCollector([](Metrics& self) { self.SetGauge("g", {}, 7); });

  EXPECT_EQ(m.Sum("q_total"), 6);
  EXPECT_EQ(m.Sum("q_total", {{"outcome", "refused"}}), 3);
  EXPECT_EQ(m.Sum("q_total", {{"outcome", "refused"}, {"rule", "rate"}}), 1);
  EXPECT_EQ(m.Sum("q_total", {{"outcome", "failed"}}), 0);
  EXPECT_EQ(m.Values("q_total", {{"outcome", "refused"}}).size(), 2u);
  EXPECT_TRUE(m.Values("undefined_total").empty());
  EXPECT_EQ(m.Sum("g"), 0);  // gauges are sampled by Collect
  m.Collect();
  EXPECT_EQ(m.Sum("g"), 7);
}

// Sends `request` to 127.0.0.1:port and returns everything the server says.
std::string Exchange(int port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "connect failed";
  }
  (void)!::write(fd, request.data(), request.size());
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) response.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return response;
}

TEST(MetricsHttpServerTest, ServesMetricsAndHealthzAndNothingElse) {
  ASSERT_OK_AND_ASSIGN(auto server,
                       MetricsHttpServer::Start("127.0.0.1:0", [] { return "x_total 1\n"; }));
  ASSERT_GT(server->port(), 0);
  std::string ok = Exchange(server->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(ok, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(ok, HasSubstr("text/plain; version=0.0.4"));
  EXPECT_THAT(ok, HasSubstr("\r\n\r\nx_total 1\n"));
  EXPECT_THAT(Exchange(server->port(), "GET /healthz HTTP/1.0\r\n\r\n"),
              StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(Exchange(server->port(), "GET /fedshare.v1.AdminService/Status HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 404 "));
  EXPECT_THAT(Exchange(server->port(), "POST /metrics HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 405 "));
  EXPECT_THAT(Exchange(server->port(), "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
              StartsWith("HTTP/1.1 400 "));
  EXPECT_THAT(Exchange(server->port(), "GET /metrics HTTP/1.1\r\n" + std::string(9000, 'a')),
              StartsWith("HTTP/1.1 431 "));
  server->Stop();
  EXPECT_EQ(Exchange(server->port(), "GET /metrics HTTP/1.1\r\n\r\n"), "connect failed");
}

TEST(MetricsHttpServerTest, RefusesAnAddressInUse) {
  ASSERT_OK_AND_ASSIGN(auto first, MetricsHttpServer::Start("127.0.0.1:0", [] { return ""; }));
  EXPECT_THAT(MetricsHttpServer::Start(absl::StrCat("127.0.0.1:", first->port()), [] { return ""; })
                  .status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("cannot listen")));
}

}  // namespace
}  // namespace fedshare::metrics
