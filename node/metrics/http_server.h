// A minimal plaintext HTTP/1.1 endpoint for Prometheus scrapes (DESIGN §12).
//
//   ASSIGN_OR_RETURN(auto server, MetricsHttpServer::Start("0.0.0.0:9464",
//                                                          [&] { return metrics.Render(); }));
//   server->port();
//
// It answers `GET /metrics` with the text `render` returns
// (text/plain; version=0.0.4) and `GET /healthz` with "ok"; any other path is
// 404 and any other method 405. One connection at a time on one thread, one
// request per connection, requests larger than 8 KiB refused, and a client
// that is silent for 5 seconds is dropped, so a stuck or hostile client holds
// at most one socket and cannot make the node buffer more than 8 KiB. It
// serves nothing else: no data, no admin call, and it never reads a request
// body.
//
// Thread-safe. Stop (or the destructor) closes the socket and joins the
// thread.
#ifndef FEDSHARE_NODE_METRICS_HTTP_SERVER_H_
#define FEDSHARE_NODE_METRICS_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace fedshare::metrics {

class MetricsHttpServer {
 public:
  // Binds `address` ("host:port", port 0 picks one; host may be a name, an
  // IPv4 address or a bracketed IPv6 address). UNAVAILABLE if it cannot.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& address, std::function<std::string()> render);
  ~MetricsHttpServer();

  int port() const { return port_; }
  void Stop();

 private:
  MetricsHttpServer() = default;
  void Serve();
  void HandleConnection(int fd);

  std::function<std::string()> render_;
  int listen_fd_ = -1;
  int wake_fd_[2] = {-1, -1};  // a pipe: writing to [1] stops Serve
  int port_ = 0;
  std::thread thread_;
};

}  // namespace fedshare::metrics

#endif  // FEDSHARE_NODE_METRICS_HTTP_SERVER_H_
