// A TCP relay on 127.0.0.1 to a target address, whose connections a test can
// cut as a broken link would.
//
//   TcpProxy proxy(foundation.peer_address);
//   config.set_address(proxy.address());   // the partner dials the proxy
//   proxy.Cut();                           // every relayed connection ends
#ifndef FEDSHARE_TESTING_TCP_PROXY_H_
#define FEDSHARE_TESTING_TCP_PROXY_H_

#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fedshare::testing {

class TcpProxy {
 public:
  // Listens on 127.0.0.1, port 0, and relays each connection to `target`
  // ("HOST:PORT"; the host is taken as 127.0.0.1).
  explicit TcpProxy(const std::string& target);
  // Ends every connection and joins every thread.
  ~TcpProxy();
  std::string address() const;

  // Ends every connection relayed now, as a broken link would; new ones are
  // still relayed.
  void Cut();

 private:
  void AcceptLoop();
  static void Pump(int from, int to);

  int listen_fd_ = -1;
  int port_ = 0;
  int target_port_ = 0;
  std::thread accept_thread_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> pumps_;  // appended under mu_; joined after accept_thread_
};

}  // namespace fedshare::testing

#endif  // FEDSHARE_TESTING_TCP_PROXY_H_
