#include "node/server/overrides.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "node/server/config.h"

namespace fedshare::server {
namespace {

std::string* Field(v1::NodeConfig* config, const std::string& setting) {
  if (setting == "data_dir") return config->mutable_data_dir();
  if (setting == "tls.cert_file") return config->mutable_tls()->mutable_cert_file();
  if (setting == "tls.key_file") return config->mutable_tls()->mutable_key_file();
  if (setting == "tls.ca_file") return config->mutable_tls()->mutable_ca_file();
  if (setting == "agreements_file") return config->mutable_agreements_file();
  if (setting == "peer_address") return config->mutable_peer_address();
  if (setting == "local_address") return config->mutable_local_address();
  if (setting == "health_address") return config->mutable_health_address();
  if (setting == "metrics_address") return config->mutable_metrics_address();
  return nullptr;
}

}  // namespace

const std::vector<ConfigOverride>& ConfigOverrides() {
  static const std::vector<ConfigOverride>* overrides = new std::vector<ConfigOverride>{
      {"data_dir", "--data-dir", "FEDSHARE_DATA_DIR"},
      {"tls.cert_file", "--tls-cert-file", "FEDSHARE_TLS_CERT_FILE"},
      {"tls.key_file", "--tls-key-file", "FEDSHARE_TLS_KEY_FILE"},
      {"tls.ca_file", "--tls-ca-file", "FEDSHARE_TLS_CA_FILE"},
      {"agreements_file", "--agreements-file", "FEDSHARE_AGREEMENTS_FILE"},
      {"peer_address", "--peer-address", "FEDSHARE_PEER_ADDRESS"},
      {"local_address", "--local-address", "FEDSHARE_LOCAL_ADDRESS"},
      {"health_address", "--health-address", "FEDSHARE_HEALTH_ADDRESS"},
      {"metrics_address", "--metrics-address", "FEDSHARE_METRICS_ADDRESS"},
  };
  return *overrides;
}

absl::Status ApplyOverrides(v1::NodeConfig* config, const std::map<std::string, std::string>& flags,
                            const std::function<const char*(const char*)>& getenv) {
  std::vector<std::string> sources;
  for (const ConfigOverride& o : ConfigOverrides()) {
    std::string* field = Field(config, o.setting);
    if (auto it = flags.find(o.setting); it != flags.end()) {
      *field = it->second;
      sources.push_back(o.flag);
    } else if (const char* value = getenv(o.env.c_str()); value != nullptr && *value != '\0') {
      *field = value;
      sources.push_back(o.env);
    }
  }
  if (sources.empty()) return absl::OkStatus();
  absl::Status valid = ValidateNodeConfig(*config);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(valid.message(), " (after overrides from ",
                                                   absl::StrJoin(sources, ", "), ")"));
  }
  return absl::OkStatus();
}

}  // namespace fedshare::server
