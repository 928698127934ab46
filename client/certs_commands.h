// `fedshare certs ca|issue|request|sign`: a development CA and certificates,
// and joining a federation without the private key ever leaving the joining
// org (docs/partners.md, "Joining a foundation's federation").
#ifndef FEDSHARE_CLIENT_CERTS_COMMANDS_H_
#define FEDSHARE_CLIENT_CERTS_COMMANDS_H_

#include <ostream>
#include <string>
#include <vector>

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

// The commands; each prints what it made and returns the process's exit
// code. `role`: node, operator or analyst (empty for RunCertsSign: any).
int RunCertsCa(const std::string& trust_domain, const std::string& out, int days);
int RunCertsIssue(const std::string& ca, const std::string& org, const std::string& role,
                  const std::string& name, const std::string& out, int days,
                  const std::vector<std::string>& dns, const std::vector<std::string>& ips);
// Without `dns` and `ips`, a node's request names localhost and 127.0.0.1.
int RunCertsRequest(const std::string& trust_domain, const std::string& org,
                    const std::string& role, const std::string& name, const std::string& out,
                    const std::vector<std::string>& dns, const std::vector<std::string>& ips);
int RunCertsSign(const std::string& ca, const std::string& csr_file, const std::string& out,
                 int days, const std::string& org, const std::string& role, bool dry_run);

}  // namespace fedshare::client

#endif  // FEDSHARE_CLIENT_CERTS_COMMANDS_H_
