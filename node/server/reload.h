// Which settings a SIGHUP reload can put in force while the node serves
// (docs/operators.md#reloading-without-restart).
//
//   std::vector<std::string> later = SettingsNeedingRestart(running, reread);
//   // e.g. {"data_dir", "tls"}: log them, keep serving with the running ones
#ifndef FEDSHARE_NODE_SERVER_RELOAD_H_
#define FEDSHARE_NODE_SERVER_RELOAD_H_

#include <string>
#include <vector>

#include "fedshare/v1/config.pb.h"

namespace fedshare::server {

// The NodeConfig fields a reload applies at once: peers and the inline
// agreements (agreements_file, peers_file and the TLS files are re-read anyway).
bool AppliedOnReload(const std::string& field_name);

// The top-level NodeConfig fields (by proto name, in field order) that differ
// between `running` and `next` and are not AppliedOnReload: they take effect
// only at the next start.
std::vector<std::string> SettingsNeedingRestart(const v1::NodeConfig& running,
                                                const v1::NodeConfig& next);

}  // namespace fedshare::server

#endif  // FEDSHARE_NODE_SERVER_RELOAD_H_
