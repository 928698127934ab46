#include "testing/netns_pair.h"

#include <unistd.h>

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fedshare::testing {

std::unique_ptr<NetnsPair> NetnsPair::Make(const TempDir& tmp, std::string* why) {
  if (geteuid() != 0) {
    *why = "not root";
    return nullptr;
  }
  std::string ip;
  for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (access(path, X_OK) == 0) {
      ip = path;
      break;
    }
  }
  if (ip.empty()) {
    *why = "no ip (iproute2) command";
    return nullptr;
  }
  static std::atomic<int> made{0};
  const std::string base = absl::StrCat("fedshare-test-", getpid(), "-", ++made);
  auto pair = std::unique_ptr<NetnsPair>(new NetnsPair(tmp, ip, base + "-near", base + "-far"));
  // Interfaces are made inside their namespaces, so their names clash with
  // nothing on the host or in other tests' pairs.
  const std::vector<std::vector<std::string>> steps = {
      {"netns", "add", pair->near_},
      {"netns", "add", pair->far_},
      {"link", "add", "fs-near", "netns", pair->near_, "type", "veth", "peer", "name", "fs-far",
       "netns", pair->far_},
      {"-n", pair->near_, "addr", "add", absl::StrCat(kNearAddress, "/30"), "dev", "fs-near"},
      {"-n", pair->far_, "addr", "add", absl::StrCat(kFarAddress, "/30"), "dev", "fs-far"},
      {"-n", pair->near_, "link", "set", "fs-near", "up"},
      {"-n", pair->far_, "link", "set", "fs-far", "up"},
      {"-n", pair->near_, "link", "set", "lo", "up"},
      {"-n", pair->far_, "link", "set", "lo", "up"},
  };
  for (const std::vector<std::string>& step : steps) {
    if (std::string failed = pair->Ip(step); !failed.empty()) {
      *why = failed;
      return nullptr;  // the destructor deletes what was made
    }
  }
  return pair;
}

NetnsPair::~NetnsPair() {
  for (const std::string* name : {&near_, &far_}) Ip({"netns", "delete", *name});
}

std::string NetnsPair::Ip(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {ip_};
  argv.insert(argv.end(), args.begin(), args.end());
  static std::atomic<int> runs{0};
  absl::StatusOr<ProcessOutcome> ran =
      RunToCompletion(argv, tmp_.Sub(absl::StrCat("ip-", ++runs, ".err")));
  if (!ran.ok()) return std::string(ran.status().message());
  if (ran->exit_code == 0) return "";
  return absl::StrCat("`ip ", absl::StrJoin(args, " "), "` failed: ", ran->err);
}

}  // namespace fedshare::testing
