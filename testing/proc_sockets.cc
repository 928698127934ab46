#include "testing/proc_sockets.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace fedshare::testing {
namespace {

// An IPv4-mapped IPv6 address as /proc/net/tcp6 prints it, in the IPv4
// spelling of /proc/net/tcp ("0100007F:1F90"); other addresses unchanged.
std::string Unmapped(const std::string& address) {
  constexpr absl::string_view kMapped = "0000000000000000FFFF0000";
  if (absl::StartsWith(address, kMapped)) return address.substr(kMapped.size());
  return address;
}

}  // namespace

std::set<std::string> SocketInodes(pid_t pid) {
  std::set<std::string> inodes;
  const std::string dir = absl::StrCat("/proc/", pid, "/fd");
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return inodes;
  while (dirent* e = readdir(d)) {
    char target[256];
    ssize_t n = readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    absl::string_view t(target);
    if (absl::ConsumePrefix(&t, "socket:[") && absl::ConsumeSuffix(&t, "]")) {
      inodes.insert(std::string(t));
    }
  }
  closedir(d);
  return inodes;
}

std::vector<Socket> TcpSockets(pid_t pid) {
  const std::set<std::string> inodes = SocketInodes(pid);
  std::vector<Socket> sockets;
  for (const char* table : {"tcp", "tcp6"}) {
    std::ifstream in(absl::StrCat("/proc/", pid, "/net/", table));
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (f.size() < 10 || inodes.count(f[9]) == 0) continue;
      Socket s;
      s.local_address = Unmapped(f[1]);
      s.remote_address = Unmapped(f[2]);
      s.state = std::stoi(f[3], nullptr, 16);
      std::vector<std::string> queues = absl::StrSplit(f[4], ':');
      s.rx_queue = std::stoll(queues[1], nullptr, 16);
      sockets.push_back(s);
    }
  }
  return sockets;
}

std::string LoopbackSocketAddress(const std::string& host_port) {
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(host_port.substr(host_port.rfind(':') + 1), &port)) << host_port;
  char buf[32];
  snprintf(buf, sizeof buf, "0100007F:%04X", port);
  return buf;
}

bool HasUnreadBytes(pid_t pid) {
  for (const Socket& s : TcpSockets(pid)) {
    if (s.state == 0x01 && s.rx_queue > 0) return true;
  }
  return false;
}

std::vector<std::string> ListeningAddresses(const TempDir& tmp,
                                            const std::vector<std::string>& prefix, pid_t pid) {
  std::vector<std::string> argv = prefix;
  for (const char* ss : {"/usr/bin/ss", "/bin/ss", "/usr/sbin/ss"}) {
    if (access(ss, X_OK) == 0) {
      argv.push_back(ss);
      break;
    }
  }
  EXPECT_EQ(argv.size(), prefix.size() + 1) << "no ss (iproute2) on this machine";
  argv.insert(argv.end(), {"-ltnpH"});
  ProcessOutcome listed = RunProcess(tmp, argv);
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  std::vector<std::string> addresses;
  for (absl::string_view line : absl::StrSplit(listed.out, '\n', absl::SkipEmpty())) {
    // State Recv-Q Send-Q Local:Port Peer:Port [users:(("name",pid=N,fd=M))]
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 5) continue;
    if (pid > 0 && !absl::StrContains(line, absl::StrCat("pid=", pid, ","))) continue;
    addresses.push_back(f[3]);
  }
  return addresses;
}

}  // namespace fedshare::testing
