#include "client/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace fedshare::client {
namespace {

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    default:
      return "Status";
  }
}

bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void Send(int fd, const HttpResponse& r) {
  std::string head = absl::StrCat(
      "HTTP/1.1 ", r.status, " ", Reason(r.status), "\r\n", "Content-Type: ", r.content_type,
      "\r\n", "Content-Length: ", r.body.size(), "\r\n", "Connection: close\r\n");
  for (const auto& [name, value] : r.headers) absl::StrAppend(&head, name, ": ", value, "\r\n");
  absl::StrAppend(&head, "\r\n");
  if (WriteAll(fd, head)) WriteAll(fd, r.body);
}

HttpResponse Plain(int status, absl::string_view text) {
  return HttpResponse{status, "text/plain; charset=utf-8", absl::StrCat(text, "\n"), {}};
}

// Reads into `buffer` until it holds `want` bytes; false on EOF, error or the
// read timeout.
bool ReadAtLeast(int fd, std::string& buffer, size_t want) {
  char chunk[8192];
  while (buffer.size() < want) {
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<size_t>(n));
  }
  return true;
}

// Parses the request line and headers (`head` ends before the blank line).
bool ParseHead(absl::string_view head, HttpRequest& request, std::string& target) {
  std::vector<absl::string_view> lines = absl::StrSplit(head, "\r\n");
  std::vector<absl::string_view> first = absl::StrSplit(lines[0], ' ');
  if (first.size() != 3 || !absl::StartsWith(first[2], "HTTP/1.")) return false;
  request.method = std::string(first[0]);
  target = std::string(first[1]);
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos || colon == 0) return false;
    request.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  return true;
}

void SplitTarget(const std::string& target, HttpRequest& request) {
  size_t q = target.find('?');
  request.path = PercentDecode(target.substr(0, q));
  if (q == std::string::npos) return;
  for (absl::string_view pair : absl::StrSplit(target.substr(q + 1), '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    request.query[PercentDecode(std::string(kv.first))] = PercentDecode(std::string(kv.second));
  }
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

std::string HttpRequest::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

std::string PercentDecode(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      int hi = HexDigit(text[i + 1]), lo = HexDigit(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<LoopbackHttpServer>> LoopbackHttpServer::Create(HttpHandler handler,
                                                                               Options options) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(options.port));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 64) != 0) {
    std::string error = std::strerror(errno);
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on 127.0.0.1:", options.port, ": ", error));
  }
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return std::unique_ptr<LoopbackHttpServer>(
      new LoopbackHttpServer(std::move(handler), options, fd, ntohs(addr.sin_port)));
}

LoopbackHttpServer::LoopbackHttpServer(HttpHandler handler, Options options, int listen_fd,
                                       int port)
    : handler_(std::move(handler)), options_(options), listen_fd_(listen_fd), port_(port) {}

LoopbackHttpServer::~LoopbackHttpServer() {
  Shutdown();
  {
    absl::MutexLock lock(&state_->mu);
    state_->mu.Await(absl::Condition(
        +[](State* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) { return s->active == 0; },
        state_.get()));
  }
  close(listen_fd_);
}

void LoopbackHttpServer::Shutdown() {
  absl::MutexLock lock(&state_->mu);
  if (state_->shut_down) return;
  state_->shut_down = true;
  // Wakes a blocked accept(), which then fails.
  shutdown(listen_fd_, SHUT_RDWR);
}

void LoopbackHttpServer::Serve() {
  while (true) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    absl::MutexLock lock(&state_->mu);
    if (state_->shut_down) {
      if (fd >= 0) close(fd);
      return;
    }
    if (fd < 0) continue;
    if (state_->active >= options_.max_connections) {
      close(fd);
      continue;
    }
    ++state_->active;
    std::thread([this, fd, state = state_] {
      ServeConnection(fd);
      close(fd);
      // `this` may be gone once `active` is zero; `state` is not.
      absl::MutexLock done(&state->mu);
      --state->active;
    }).detach();
  }
}

void LoopbackHttpServer::ServeConnection(int fd) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(absl::ToInt64Seconds(options_.read_timeout));
  tv.tv_usec =
      static_cast<suseconds_t>(absl::ToInt64Microseconds(options_.read_timeout % absl::Seconds(1)));
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

  std::string buffer;
  size_t end = std::string::npos;
  while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
    if (buffer.size() > options_.max_header_bytes) {
      return Send(fd, Plain(431, "request headers too large"));
    }
    if (!ReadAtLeast(fd, buffer, buffer.size() + 1)) return;
  }
  if (end > options_.max_header_bytes) return Send(fd, Plain(431, "request headers too large"));
  HttpRequest request;
  std::string target;
  if (!ParseHead(absl::string_view(buffer).substr(0, end), request, target)) {
    return Send(fd, Plain(400, "malformed request"));
  }
  SplitTarget(target, request);
  if (!request.Header("transfer-encoding").empty()) {
    return Send(fd, Plain(411, "send the body with a Content-Length"));
  }
  size_t length = 0;
  std::string length_text = request.Header("content-length");
  if (!length_text.empty() && !absl::SimpleAtoi(length_text, &length)) {
    return Send(fd, Plain(400, "bad Content-Length"));
  }
  if (length > options_.max_body_bytes) return Send(fd, Plain(413, "request body too large"));
  if (!ReadAtLeast(fd, buffer, end + 4 + length)) return;
  request.body = buffer.substr(end + 4, length);
  Send(fd, handler_(request));
}

}  // namespace fedshare::client
