// The CLI's commands about nodes themselves: `status` (the own node, local
// listener), `describe` (what a partner lets the caller's org ask) and
// `peers` (the configured partners and whether they answer).
#ifndef FEDSHARE_CLIENT_NODE_COMMANDS_H_
#define FEDSHARE_CLIENT_NODE_COMMANDS_H_

#include <string>

#include "client/cli_common.h"

namespace fedshare::client {

// Each returns the process's exit code.
// kExitRefused when the node's audit log has failed (it answers nothing).
int RunStatus(const Globals& g);
// Without `peer`: the node at --node (a peer listener) describes itself to
// the caller's node certificate. With `peer`: the caller's own node (local
// listener) asks that partner and passes its answer on.
int RunDescribe(const Globals& g, const std::string& peer);
// `output`: table, csv or json. kExitCertificateExpiring when a peer's
// certificate expires within `warn_days` (or has expired).
int RunPeers(const Globals& g, bool probe, const std::string& output, int warn_days);

}  // namespace fedshare::client

#endif  // FEDSHARE_CLIENT_NODE_COMMANDS_H_
