#include "client/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace fedshare::client {
namespace {

// Sends `raw` to 127.0.0.1:`port` and returns all the server wrote back.
std::string RoundTrip(int port, const std::string& raw, bool half_close = true) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  size_t sent = 0;
  while (sent < raw.size()) {
    ssize_t n = send(fd, raw.data() + sent, raw.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may stop reading and answer early
    sent += static_cast<size_t>(n);
  }
  if (half_close) shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(LoopbackHttpServer::Options options = {}) {
    auto server = LoopbackHttpServer::Create(
        [this](const HttpRequest& r) {
          last_ = r;
          return HttpResponse{200,
                              "text/plain",
                              absl::StrCat(r.method, " ", r.path, " ", r.body),
                              {{"X-Test", "1"}}};
        },
        options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    thread_ = std::thread([this] { server_->Serve(); });
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    if (thread_.joinable()) thread_.join();
  }

  std::unique_ptr<LoopbackHttpServer> server_;
  std::thread thread_;
  HttpRequest last_;
};

TEST_F(HttpServerTest, ServesARequestWithQueryHeadersAndBody) {
  Start();
  std::string reply = RoundTrip(server_->port(),
                                "POST /api/q%20x?token=a%2Fb&n=1 HTTP/1.1\r\nHost: h\r\n"
                                "X-Fedshare-Token: T\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(reply.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << reply;
  EXPECT_NE(reply.find("X-Test: 1\r\n"), std::string::npos);
  EXPECT_NE(reply.find("Connection: close\r\n"), std::string::npos);
  EXPECT_NE(reply.find("\r\n\r\nPOST /api/q x hello"), std::string::npos) << reply;
  EXPECT_EQ(last_.query["token"], "a/b");
  EXPECT_EQ(last_.query["n"], "1");
  EXPECT_EQ(last_.Header("x-fedshare-token"), "T");
}

TEST_F(HttpServerTest, RefusesOversizedHeadersAndBodies) {
  LoopbackHttpServer::Options options;
  options.max_header_bytes = 256;
  options.max_body_bytes = 16;
  Start(options);
  std::string big_header =
      absl::StrCat("GET / HTTP/1.1\r\nX-Big: ", std::string(1000, 'a'), "\r\n\r\n");
  EXPECT_EQ(RoundTrip(server_->port(), big_header).rfind("HTTP/1.1 431", 0), 0u);
  EXPECT_EQ(RoundTrip(server_->port(), "POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n")
                .rfind("HTTP/1.1 413", 0),
            0u);
  EXPECT_EQ(RoundTrip(server_->port(), "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
                .rfind("HTTP/1.1 411", 0),
            0u);
  EXPECT_EQ(RoundTrip(server_->port(), "nonsense\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
}

TEST_F(HttpServerTest, DropsAClientThatSendsTooLittle) {
  LoopbackHttpServer::Options options;
  options.read_timeout = absl::Milliseconds(100);
  Start(options);
  // Half a request and no more: the server gives up and closes unanswered.
  EXPECT_EQ(RoundTrip(server_->port(), "GET / HTTP/1.1\r\nHost", /*half_close=*/false), "");
}

TEST_F(HttpServerTest, ListensOn127001Only) {
  Start();
  // Bound to 127.0.0.1, not to every address: 127.0.0.2 (loopback too, but
  // another address) finds nobody listening.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1);
  addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
  EXPECT_NE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  close(fd);
}

TEST(PercentDecodeTest, DecodesEscapesAndKeepsBadOnes) {
  EXPECT_EQ(PercentDecode("%41b%2f"), "Ab/");
  EXPECT_EQ(PercentDecode("a+b"), "a+b");
  EXPECT_EQ(PercentDecode("%zz%4"), "%zz%4");
}

}  // namespace
}  // namespace fedshare::client
