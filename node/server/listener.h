// A listening socket whose connections the node accepts itself and hands to
// a gRPC server (ServerBuilder's external connection acceptor).
//
// Why not gRPC's own listener: gRPC 1.51 stops a listening port for good the
// first time accept() fails with EMFILE, so a flood of idle TCP connections
// beyond the descriptor limit takes the listener off the air until restart.
// Here a flood is bounded instead: at most `max_connections` open connections
// per listener and `reserve_fds` descriptors always left for the store, the
// audit and certificate reloads; connections past either are closed at once,
// and a failing accept() is retried after a short pause.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Listener> l, Listener::Bind("0.0.0.0:0", options));
//   auto acceptor = builder.experimental().AddExternalConnectionAcceptor(FROM_FD, creds);
//   server = builder.BuildAndStart();
//   l->Start(std::move(acceptor));
//   ...
//   l->Stop();   // before the server shuts down
#ifndef FEDSHARE_NODE_SERVER_LISTENER_H_
#define FEDSHARE_NODE_SERVER_LISTENER_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "grpcpp/server_builder.h"

namespace fedshare::server {

class Listener {
 public:
  struct Options {
    std::string name;  // for logs: "peer" or "local"
    int max_connections = 512;
    int reserve_fds = 64;
  };

  // Binds and listens on "host:port" (numeric IPv4 or IPv6 host, or
  // "localhost"; port 0 picks a free one). UNAVAILABLE if the address is in
  // use or not local.
  static absl::StatusOr<std::unique_ptr<Listener>> Bind(const std::string& address,
                                                        Options options);
  // Stops and closes the socket.
  ~Listener();

  int port() const { return port_; }

  // Starts the accept thread. REQUIRES: the server that made `acceptor` has
  // started; called once.
  void Start(std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor);
  // Stops accepting. Idempotent.
  void Stop();

 private:
  Listener() = default;
  void AcceptLoop();
  // Drops connections gRPC has closed since they were handed over.
  void Prune();
  // Whether a new connection on `fd` stays within both bounds.
  bool Admit(int fd);

  Options options_;
  int fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  int port_ = 0;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor_;
  std::thread thread_;
  // Accept-thread only: descriptor -> socket inode of connections handed over.
  std::map<int, ino_t> open_;
};

}  // namespace fedshare::server

#endif  // FEDSHARE_NODE_SERVER_LISTENER_H_
