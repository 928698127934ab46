#include "testing/tcp_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace fedshare::testing {

TcpProxy::TcpProxy(const std::string& target) {
  const size_t colon = target.rfind(':');
  target_port_ = std::stoi(target.substr(colon + 1));
  listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len), 0);
  EXPECT_EQ(listen(listen_fd_, 16), 0);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

TcpProxy::~TcpProxy() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  accept_thread_.join();
  Cut();
  for (std::thread& t : pumps_) t.join();
  for (int fd : fds_) close(fd);
  close(listen_fd_);
}

std::string TcpProxy::address() const { return absl::StrCat("127.0.0.1:", port_); }

void TcpProxy::Cut() {
  absl::MutexLock lock(&mu_);
  for (int fd : fds_) shutdown(fd, SHUT_RDWR);
}

void TcpProxy::AcceptLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    int in = accept(listen_fd_, nullptr, nullptr);
    if (in < 0) continue;
    int out = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(target_port_));
    if (connect(out, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close(in);
      close(out);
      continue;
    }
    absl::MutexLock lock(&mu_);
    fds_.push_back(in);
    fds_.push_back(out);
    pumps_.emplace_back([in, out] { Pump(in, out); });
    pumps_.emplace_back([in, out] { Pump(out, in); });
  }
}

void TcpProxy::Pump(int from, int to) {
  char buf[16384];
  for (;;) {
    ssize_t n = read(from, buf, sizeof buf);
    // MSG_NOSIGNAL: a write to a side Cut() shut down must end the pump,
    // not raise SIGPIPE in the test's process.
    if (n <= 0 || send(to, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) break;
  }
  shutdown(from, SHUT_RDWR);
  shutdown(to, SHUT_RDWR);
}

}  // namespace fedshare::testing
