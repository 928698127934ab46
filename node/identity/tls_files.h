// Checks of certificate, key and CA files before they are handed to gRPC,
// whose TLS layer reports bad files only as failed handshakes.
#ifndef FEDSHARE_NODE_IDENTITY_TLS_FILES_H_
#define FEDSHARE_NODE_IDENTITY_TLS_FILES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace fedshare::identity {

// OK if `ca_pem` holds at least one certificate and, when `cert_pem` or
// `key_pem` is given, both are given, the certificate parses and the key is
// its key. INVALID_ARGUMENT otherwise, naming `what` ("tls.cert_file", say).
absl::Status CheckTlsPem(absl::string_view cert_pem, absl::string_view key_pem,
                         absl::string_view ca_pem);

// CheckTlsPem on the files' contents (empty path: not given). NOT_FOUND or
// INVALID_ARGUMENT naming the field (`field_prefix` + "cert_file" ...) and path.
absl::Status CheckTlsFiles(const std::string& cert_file, const std::string& key_file,
                           const std::string& ca_file, absl::string_view field_prefix);

}  // namespace fedshare::identity

#endif  // FEDSHARE_NODE_IDENTITY_TLS_FILES_H_
