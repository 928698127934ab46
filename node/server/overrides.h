// Overrides of the config file's paths and addresses, for containers and
// service managers (docs/operators.md#configuration).
//
// Precedence, highest first: a command-line flag, then an environment
// variable, then the config file, then the built-in default. Values from a
// flag or the environment are used as given (a relative path is relative to
// the working directory, as any command-line path is).
//
//   setting          flag                 environment variable
//   data_dir         --data-dir           FEDSHARE_DATA_DIR
//   tls.cert_file    --tls-cert-file      FEDSHARE_TLS_CERT_FILE
//   tls.key_file     --tls-key-file       FEDSHARE_TLS_KEY_FILE
//   tls.ca_file      --tls-ca-file        FEDSHARE_TLS_CA_FILE
//   agreements_file  --agreements-file    FEDSHARE_AGREEMENTS_FILE
//   peer_address     --peer-address       FEDSHARE_PEER_ADDRESS
//   local_address    --local-address      FEDSHARE_LOCAL_ADDRESS
//   health_address   --health-address     FEDSHARE_HEALTH_ADDRESS
//   metrics_address  --metrics-address    FEDSHARE_METRICS_ADDRESS
//
// The config file itself is --config or FEDSHARE_CONFIG.
#ifndef FEDSHARE_NODE_SERVER_OVERRIDES_H_
#define FEDSHARE_NODE_SERVER_OVERRIDES_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "fedshare/v1/config.pb.h"

namespace fedshare::server {

struct ConfigOverride {
  std::string setting;  // e.g. "tls.cert_file"
  std::string flag;     // e.g. "--tls-cert-file"
  std::string env;      // e.g. "FEDSHARE_TLS_CERT_FILE"
};

// Every overridable setting, in the order above.
const std::vector<ConfigOverride>& ConfigOverrides();

// Applies `flags` (setting -> value, only those given) and then, for
// settings without a flag, the environment as `getenv` reports it (nullptr:
// unset; an empty value counts as unset). Then validates the result:
// INVALID_ARGUMENT naming the setting and where its value came from.
absl::Status ApplyOverrides(v1::NodeConfig* config, const std::map<std::string, std::string>& flags,
                            const std::function<const char*(const char*)>& getenv);

}  // namespace fedshare::server

#endif  // FEDSHARE_NODE_SERVER_OVERRIDES_H_
