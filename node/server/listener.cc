#include "node/server/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "spdlog/spdlog.h"

namespace fedshare::server {
namespace {

// Pause after accept() fails for want of descriptors or memory.
constexpr int kAcceptRetryMs = 100;

absl::StatusOr<sockaddr_storage> Resolve(const std::string& address, socklen_t* len) {
  size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("'", address, "' is not HOST:PORT"));
  }
  absl::string_view host = absl::string_view(address).substr(0, colon);
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  std::string h(host);
  if (h.empty()) h = "0.0.0.0";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (getaddrinfo(h.c_str(), absl::StrCat(port).c_str(), &hints, &found) != 0 || found == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, ": the host does not resolve"));
  }
  sockaddr_storage storage{};
  std::memcpy(&storage, found->ai_addr, found->ai_addrlen);
  *len = found->ai_addrlen;
  freeaddrinfo(found);
  return storage;
}

int OpenFileLimit() {
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) != 0 || nofile.rlim_cur == RLIM_INFINITY) return 1 << 20;
  return static_cast<int>(nofile.rlim_cur);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Listener>> Listener::Bind(const std::string& address,
                                                         Options options) {
  socklen_t len = 0;
  absl::StatusOr<sockaddr_storage> addr = Resolve(address, &len);
  if (!addr.ok()) return addr.status();
  std::unique_ptr<Listener> l(new Listener());
  l->options_ = std::move(options);
  l->fd_ = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (l->fd_ < 0 || setsockopt(l->fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      ::bind(l->fd_, reinterpret_cast<const sockaddr*>(&*addr), len) != 0 ||
      listen(l->fd_, SOMAXCONN) != 0 || pipe2(l->stop_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
    if (errno == EADDRINUSE) {
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on ", address,
          ": port in use (another program, or another node, listens there); choose another port "
          "or stop the other program"));
    }
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, ": ", std::strerror(errno)));
  }
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof bound;
  getsockname(l->fd_, reinterpret_cast<sockaddr*>(&bound), &bound_len);
  l->port_ = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                              : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  return l;
}

Listener::~Listener() {
  Stop();
  for (int fd : {fd_, stop_pipe_[0], stop_pipe_[1]}) {
    if (fd >= 0) close(fd);
  }
}

void Listener::Start(std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor) {
  acceptor_ = std::move(acceptor);
  thread_ = std::thread([this] { AcceptLoop(); });
}

void Listener::Stop() {
  if (!thread_.joinable()) return;
  char byte = 0;
  while (write(stop_pipe_[1], &byte, 1) < 0 && errno == EINTR) {
  }
  thread_.join();
}

void Listener::Prune() {
  for (auto it = open_.begin(); it != open_.end();) {
    struct stat st;
    if (fstat(it->first, &st) != 0 || st.st_ino != it->second) {
      it = open_.erase(it);
    } else {
      ++it;
    }
  }
}

bool Listener::Admit(int fd) {
  // Descriptors are allocated lowest first, so a high number means nearly
  // that many are open.
  if (fd >= OpenFileLimit() - options_.reserve_fds) return false;
  if (static_cast<int>(open_.size()) >= options_.max_connections) Prune();
  return static_cast<int>(open_.size()) < options_.max_connections;
}

void Listener::AcceptLoop() {
  int64_t turned_away = 0;
  bool back_off = false;
  while (true) {
    if (back_off) {
      // Wait out the pause, waking only to stop.
      pollfd stop = {stop_pipe_[0], POLLIN, 0};
      if (poll(&stop, 1, kAcceptRetryMs) > 0) break;
      back_off = false;
    }
    pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    int ready = poll(fds, 2, -1);
    if (ready < 0 && errno != EINTR) break;
    if (fds[1].revents != 0) break;
    int conn = accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (conn < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        if (turned_away++ % 1000 == 0) {
          spdlog::warn("event=accept_failed listener={} reason=\"{}\" retry_ms={}", options_.name,
                       std::strerror(errno), kAcceptRetryMs);
        }
        back_off = true;
      }
      continue;
    }
    if (!Admit(conn)) {
      close(conn);
      if (turned_away++ % 1000 == 0) {
        spdlog::warn("event=connection_refused listener={} open={} max_connections={}",
                     options_.name, open_.size(), options_.max_connections);
      }
      continue;
    }
    int one = 1;
    setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct stat st;
    fstat(conn, &st);
    open_[conn] = st.st_ino;
    grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters params;
    params.listener_fd = fd_;
    params.fd = conn;
    acceptor_->HandleNewConnection(&params);
  }
}

}  // namespace fedshare::server
