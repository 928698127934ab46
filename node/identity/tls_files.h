// Checks of certificate, key and CA files before they are handed to gRPC,
// whose TLS layer reports bad files only as failed handshakes.
#ifndef FEDSHARE_NODE_IDENTITY_TLS_FILES_H_
#define FEDSHARE_NODE_IDENTITY_TLS_FILES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

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

// How long before a certificate's expiry CheckOwnCertificate warns.
inline constexpr absl::Duration kExpiryWarning = absl::Hours(24 * 30);

// Checks a node's own certificate as its peers will at `now`: it must chain to
// a CA in `ca_file`, be valid at `now`, and name
// spiffe://<trust_domain>/org/<org_id>/node. FAILED_PRECONDITION otherwise,
// with the reason (the expiry date, say) and the command that renews it;
// NOT_FOUND / INVALID_ARGUMENT for unreadable files. On OK, one warning per
// certificate (the node's, or one in the CA bundle) that expires within
// kExpiryWarning of `now`; empty if none.
absl::StatusOr<std::vector<std::string>> CheckOwnCertificate(const std::string& cert_file,
                                                             const std::string& ca_file,
                                                             absl::string_view trust_domain,
                                                             absl::string_view org_id,
                                                             absl::Time now);

}  // namespace fedshare::identity

#endif  // FEDSHARE_NODE_IDENTITY_TLS_FILES_H_
