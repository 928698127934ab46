// `fedshare certs request` and `fedshare certs sign`: joining a federation
// without the private key ever leaving the joining org (docs/partners.md,
// "Joining a foundation's federation").
#ifndef FEDSHARE_CLIENT_CERTS_COMMANDS_H_
#define FEDSHARE_CLIENT_CERTS_COMMANDS_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "node/identity/cert_request.h"

namespace fedshare::client {

// Makes the key and the request (identity::CreateCertificateRequest) and
// tells `out` what was written and what to send.
absl::Status CertsRequest(const identity::RequestOptions& options, std::ostream& out);

// Reads the request at `csr_file`, shows `out` what it asks for, and unless
// `dry_run` signs it (identity::SignCertificateRequest). Nothing is written
// when the request is refused.
absl::Status CertsSign(const std::string& ca_dir, const std::string& csr_file,
                       const identity::SignOptions& options, bool dry_run, std::ostream& out);

}  // namespace fedshare::client

#endif  // FEDSHARE_CLIENT_CERTS_COMMANDS_H_
