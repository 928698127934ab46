// Two fresh network namespaces, "near" and "far", joined by a veth pair
// (kNearAddress in near, kFarAddress in far), each with its loopback up.
// Traffic between them never leaves the pair. Names are unique per process
// and pair; the destructor deletes both, whatever the test did (a process
// still inside keeps its namespace alive, unnamed, until it exits).
//
//   std::string why;
//   std::unique_ptr<NetnsPair> ns = NetnsPair::Make(tmp, &why);
//   if (ns == nullptr) GTEST_SKIP() << why;
//   argv = ns->Far();   // then the command to run in the far namespace
#ifndef FEDSHARE_TESTING_NETNS_PAIR_H_
#define FEDSHARE_TESTING_NETNS_PAIR_H_

#include <memory>
#include <string>
#include <vector>

#include "tests/test_env.h"

namespace fedshare::testing {

class NetnsPair {
 public:
  static constexpr char kNearAddress[] = "10.213.0.1";
  static constexpr char kFarAddress[] = "10.213.0.2";

  // Null, saying why in `*why`, where namespaces cannot be made (not root,
  // no `ip`, a kernel or container that forbids them). `tmp` must outlive
  // the pair.
  static std::unique_ptr<NetnsPair> Make(const TempDir& tmp, std::string* why);

  ~NetnsPair();

  // What runs a command inside a namespace: `ip netns exec NAME`, which execs it.
  std::vector<std::string> Near() const { return {ip_, "netns", "exec", near_}; }
  std::vector<std::string> Far() const { return {ip_, "netns", "exec", far_}; }

 private:
  NetnsPair(const TempDir& tmp, std::string ip, std::string near, std::string far)
      : tmp_(tmp), ip_(std::move(ip)), near_(std::move(near)), far_(std::move(far)) {}

  // Runs `ip ARGS...`; "" if it succeeded, else what it said.
  std::string Ip(const std::vector<std::string>& args) const;

  const TempDir& tmp_;
  std::string ip_;
  std::string near_;
  std::string far_;
};

}  // namespace fedshare::testing

#endif  // FEDSHARE_TESTING_NETNS_PAIR_H_
