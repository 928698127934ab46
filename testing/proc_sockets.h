// A process's TCP sockets as the kernel lists them (/proc/PID/fd and
// /proc/PID/net/tcp{,6}) and as `ss` shows them: for tests that check what a
// node listens on, which connections it holds, and whether a stopped process
// has bytes waiting unread.
#ifndef FEDSHARE_TESTING_PROC_SOCKETS_H_
#define FEDSHARE_TESTING_PROC_SOCKETS_H_

#include <sys/types.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "tests/test_env.h"

namespace fedshare::testing {

// A TCP socket of a process, from /proc/net/tcp{,6}.
struct Socket {
  std::string local_address;  // as the kernel prints it: hex address ":" hex port
  std::string remote_address;
  int state = 0;         // 0x0A listening, 0x01 established
  int64_t rx_queue = 0;  // bytes received and not yet read
};

// The inodes of the sockets `pid` holds open.
std::set<std::string> SocketInodes(pid_t pid);

// Every TCP socket `pid` holds (what `ss -tanp` would show for it), IPv4-mapped
// IPv6 addresses in their IPv4 spelling.
std::vector<Socket> TcpSockets(pid_t pid);

// The kernel's spelling of 127.0.0.1:port in /proc/net/tcp, from "HOST:PORT".
std::string LoopbackSocketAddress(const std::string& host_port);

// Whether a process stopped with SIGSTOP holds bytes it has not read on an
// established connection (a question sent to it).
bool HasUnreadBytes(pid_t pid);

// The local addresses of the listening TCP sockets `ss -ltnp` shows, run
// after `prefix` (e.g. `ip netns exec NAME`); with `pid` > 0, only that
// process's. Fails the test (non-fatally) if ss cannot run.
std::vector<std::string> ListeningAddresses(const TempDir& tmp,
                                            const std::vector<std::string>& prefix, pid_t pid = 0);

}  // namespace fedshare::testing

#endif  // FEDSHARE_TESTING_PROC_SOCKETS_H_
