// gRPC server credentials for fedshare's listeners: TLS with the node's
// certificate, reloaded from disk, asking every client for a certificate.
//
//   RETURN_IF_ERROR(CheckServerTlsConfig(config.tls()));   // at start
//   builder.AddListeningPort(address, MakeServerCredentials(config.tls()), &port);
//
// The handshake asks for a client certificate but does not verify it
// (GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY): a client without one,
// or with one from another CA, still connects, and the Authenticator
// (authenticator.h) refuses its calls with UNAUTHENTICATED and the reason.
// Handlers that skip Authenticate are therefore open to anyone: every handler
// must authenticate. TLS still proves the client holds the certificate's key.
//
// cert_file, key_file and ca_file are re-read every reload_interval_seconds
// (0 means 60) by gRPC's FileWatcherCertificateProvider; new connections use
// the new certificate, established ones keep theirs.
#ifndef FEDSHARE_NODE_IDENTITY_SERVER_CREDENTIALS_H_
#define FEDSHARE_NODE_IDENTITY_SERVER_CREDENTIALS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fedshare/v1/config.pb.h"
#include "grpcpp/security/server_credentials.h"

namespace fedshare::identity {

// OK if the three files exist, parse, and the key belongs to the certificate;
// otherwise INVALID_ARGUMENT / NOT_FOUND naming the field and file. Call it at
// start: gRPC itself reports bad files only as failed handshakes.
absl::Status CheckServerTlsConfig(const v1::TlsConfig& config);

// CheckOwnCertificate (tls_files.h) on config's cert_file and ca_file: the
// node's certificate must be one its peers accept at `now`. On OK, warnings
// about certificates that expire within 30 days.
absl::StatusOr<std::vector<std::string>> CheckOwnCertificate(const v1::TlsConfig& config,
                                                             absl::string_view trust_domain,
                                                             absl::string_view org_id,
                                                             absl::Time now);

// REQUIRES: CheckServerTlsConfig(config) is OK (otherwise every handshake
// fails until the files are fixed on disk). Never null.
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const v1::TlsConfig& config);

}  // namespace fedshare::identity

#endif  // FEDSHARE_NODE_IDENTITY_SERVER_CREDENTIALS_H_
