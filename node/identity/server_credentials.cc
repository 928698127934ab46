#include "node/identity/server_credentials.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "node/identity/tls_files.h"

namespace fedshare::identity {

absl::Status CheckServerTlsConfig(const v1::TlsConfig& config) {
  if (config.cert_file().empty()) return absl::InvalidArgumentError("tls.cert_file is required");
  if (config.key_file().empty()) return absl::InvalidArgumentError("tls.key_file is required");
  if (config.ca_file().empty()) return absl::InvalidArgumentError("tls.ca_file is required");
  if (config.reload_interval_seconds() < 0) {
    return absl::InvalidArgumentError("tls.reload_interval_seconds must not be negative");
  }
  return CheckTlsFiles(config.cert_file(), config.key_file(), config.ca_file(), "tls.");
}

absl::StatusOr<std::vector<std::string>> CheckOwnCertificate(const v1::TlsConfig& config,
                                                             absl::string_view trust_domain,
                                                             absl::string_view org_id,
                                                             absl::Time now) {
  return CheckOwnCertificate(config.cert_file(), config.ca_file(), trust_domain, org_id, now);
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const v1::TlsConfig& config) {
  unsigned int interval = config.reload_interval_seconds() > 0
                              ? static_cast<unsigned int>(config.reload_interval_seconds())
                              : 60;
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      config.key_file(), config.cert_file(), config.ca_file(), interval);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  options.watch_root_certs();
  options.set_cert_request_type(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
  // Verification happens per RPC in the Authenticator, which can answer with a
  // status; nothing is checked during the handshake.
  options.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  return grpc::experimental::TlsServerCredentials(options);
}

}  // namespace fedshare::identity
