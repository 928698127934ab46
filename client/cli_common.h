// What every fedshare CLI command shares: exit codes, the global flags,
// dialing the node, and printing a failure with its refusal and hint.
#ifndef FEDSHARE_CLIENT_CLI_COMMON_H_
#define FEDSHARE_CLIENT_CLI_COMMON_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/node_client.h"

namespace fedshare::client {

constexpr int kExitRefused = 1;
constexpr int kExitUsage = 2;
constexpr int kExitIncomplete = 3;           // fewer partners answered than --min-coverage
constexpr int kExitCertificateExpiring = 4;  // `peers`: a certificate within --warn-days

struct Globals {
  std::string node;
  std::string identity_dir;
  std::string expect_org;
  double timeout_seconds = 60;
};

// Which listener a command's calls are for, to explain an UNIMPLEMENTED
// answer from the other one.
enum class Listener { kAny, kLocal, kPeer };

// Prints the error, the refusal's rule, agreement, field and retry time when
// the node sent them (google.rpc.ErrorInfo), and a hint when the call reached
// a listener that does not serve it; returns the exit code.
int Fail(const absl::Status& status, Listener wanted = Listener::kAny);

// A client for --node (or `default_node`) with --identity, expecting a server
// of the caller's own trust domain (and --expect-org when given).
absl::StatusOr<std::unique_ptr<NodeClient>> Dial(const Globals& g, const std::string& default_node);

}  // namespace fedshare::client

#endif  // FEDSHARE_CLIENT_CLI_COMMON_H_
