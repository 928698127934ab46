// A small HTTP/1.1 server for one person on this machine: `fedshare
// dashboard` serves its page and JSON calls with it.
//
//   auto server = LoopbackHttpServer::Create(
//       [](const HttpRequest& r) { return HttpResponse{200, "text/plain", "hi\n"}; }, {});
//   std::cout << "http://127.0.0.1:" << (*server)->port() << "/\n";
//   (*server)->Serve();  // until Shutdown()
//
// It listens on 127.0.0.1 only, answers one request per connection
// (Connection: close), and bounds what a client can make it hold: the
// request line and headers (431 past max_header_bytes), the body (413 past
// max_body_bytes; a chunked body is refused with 411), the time a client may
// take to send them (read_timeout, then the connection is dropped), and the
// connections served at once (past max_connections a new one is closed
// unanswered). Each connection is served on its own thread, so the handler
// must be thread-safe. Authentication is the handler's job.
#ifndef FEDSHARE_CLIENT_HTTP_SERVER_H_
#define FEDSHARE_CLIENT_HTTP_SERVER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fedshare::client {

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string path;                            // percent-decoded, without the query
  std::map<std::string, std::string> query;    // percent-decoded; a repeated name keeps the last
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;

  // The header's value, or "" when absent. `name` is lowercase.
  std::string Header(const std::string& name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // sent as given
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

class LoopbackHttpServer {
 public:
  struct Options {
    int port = 0;  // 0: a free port the kernel picks
    size_t max_header_bytes = 16 * 1024;
    size_t max_body_bytes = 1024 * 1024;
    absl::Duration read_timeout = absl::Seconds(10);
    int max_connections = 16;
  };

  // Binds 127.0.0.1:`options.port` and listens; requests wait until Serve().
  static absl::StatusOr<std::unique_ptr<LoopbackHttpServer>> Create(HttpHandler handler,
                                                                    Options options);

  // Shuts down and waits for the connections being served.
  ~LoopbackHttpServer();

  int port() const { return port_; }

  // Accepts and serves connections until Shutdown(). Call once.
  void Serve();

  // Makes Serve() return; connections being served finish. Thread-safe.
  void Shutdown();

 private:
  LoopbackHttpServer(HttpHandler handler, Options options, int listen_fd, int port);
  void ServeConnection(int fd);

  // Shared with the connection threads, which may still be releasing the
  // mutex when the destructor has seen `active` reach zero.
  struct State {
    absl::Mutex mu;
    int active ABSL_GUARDED_BY(mu) = 0;
    bool shut_down ABSL_GUARDED_BY(mu) = false;
  };

  const HttpHandler handler_;
  const Options options_;
  const int listen_fd_;
  const int port_;
  const std::shared_ptr<State> state_ = std::make_shared<State>();
};

// "%41b" -> "Ab"; '+' stays '+' (query values from the page are encoded
// with encodeURIComponent). An invalid escape is kept as it is.
std::string PercentDecode(const std::string& text);

}  // namespace fedshare::client

#endif  // FEDSHARE_CLIENT_HTTP_SERVER_H_
