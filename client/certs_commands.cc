#include "client/certs_commands.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli_common.h"
#include "node/common/files.h"
#include "node/common/status_macros.h"
#include "node/common/time_util.h"
#include "node/identity/cert_issuer.h"
#include "node/identity/spiffe.h"

namespace fedshare::client {
namespace {

std::string ListOrNone(const std::vector<std::string>& items) {
  return items.empty() ? "(none)" : absl::StrJoin(items, ", ");
}

void PrintRequest(const identity::RequestInfo& info, std::ostream& out) {
  out << "  identity:     " << info.identity.Describe() << "\n"
      << "  key:          " << info.key_type << ", SHA-256 " << info.key_fingerprint << "\n";
  if (info.identity.role == identity::Role::kNode) {
    out << "  DNS names:    " << ListOrNone(info.dns_names) << "\n"
        << "  IP addresses: " << ListOrNone(info.ip_addresses) << "\n";
  }
}

}  // namespace

absl::Status CertsRequest(const identity::RequestOptions& options, std::ostream& out) {
  FEDSHARE_ASSIGN_OR_RETURN(identity::RequestInfo info,
                            identity::CreateCertificateRequest(options));
  out << "made a key and a certificate request\n";
  PrintRequest(info, out);
  out << "  private key:  " << options.out_dir << "/" << identity::kKeyFile
      << " (mode 0600; it stays here, never send it)\n"
      << "  request:      " << info.csr_path << "\n"
      << "send the request to your federation's CA holder, and tell them the key's SHA-256 by "
         "another channel;\n"
      << "then put the cert.pem and ca.pem they send back into " << options.out_dir << "\n";
  return absl::OkStatus();
}

absl::Status CertsSign(const std::string& ca_dir, const std::string& csr_file,
                       const identity::SignOptions& options, bool dry_run, std::ostream& out) {
  FEDSHARE_ASSIGN_OR_RETURN(std::string csr_pem, ReadFile(csr_file));
  FEDSHARE_ASSIGN_OR_RETURN(identity::RequestInfo info,
                            identity::CheckCertificateRequest(ca_dir, csr_pem, options.expect));
  out << "certificate request " << csr_file << "\n";
  PrintRequest(info, out);
  if (dry_run) {
    out << "not signed (--dry-run); compare the key's SHA-256 with the requester's\n";
    return absl::OkStatus();
  }
  FEDSHARE_ASSIGN_OR_RETURN(identity::SignedRequest signed_request,
                            identity::SignCertificateRequest(ca_dir, csr_pem, options));
  out << "signed, valid " << fedshare::FormatTime(signed_request.not_before) << " to "
      << fedshare::FormatTime(signed_request.not_after) << "\n"
      << "  certificate:  " << signed_request.cert_path << "\n"
      << "  CA:           " << signed_request.ca_path << "\n"
      << "send both back to the requester; they go next to its key.pem\n";
  return absl::OkStatus();
}

int RunCertsCa(const std::string& trust_domain, const std::string& out, int days) {
  absl::Status s = identity::CreateCa(trust_domain, out, days);
  if (!s.ok()) return Fail(s);
  std::cout << "created CA for trust domain " << trust_domain << " in " << out
            << " (ca.pem, ca.key)\n";
  return 0;
}

int RunCertsIssue(const std::string& ca, const std::string& org, const std::string& role,
                  const std::string& name, const std::string& out, int days,
                  const std::vector<std::string>& dns, const std::vector<std::string>& ips) {
  absl::StatusOr<identity::Role> parsed_role = identity::ParseRole(role);
  if (!parsed_role.ok()) return Fail(parsed_role.status());
  identity::IssueOptions options;
  options.org = org;
  options.role = *parsed_role;
  options.name = name;
  options.out_dir = out;
  options.days = days;
  if (!dns.empty()) options.dns_names = dns;
  if (!ips.empty()) options.ip_addresses = ips;
  absl::Status s = identity::IssueCertificate(ca, options);
  if (!s.ok()) return Fail(s);
  absl::StatusOr<std::string> td = identity::ReadCaTrustDomain(ca);
  absl::StatusOr<std::string> id =
      td.ok() ? identity::SpiffeIdFor(*td, options) : absl::StatusOr<std::string>(td.status());
  std::cout << "issued " << (id.ok() ? *id : role) << " in " << out
            << " (cert.pem, key.pem, ca.pem)\n";
  return 0;
}

int RunCertsRequest(const std::string& trust_domain, const std::string& org,
                    const std::string& role, const std::string& name, const std::string& out,
                    const std::vector<std::string>& dns, const std::vector<std::string>& ips) {
  absl::StatusOr<identity::Role> parsed_role = identity::ParseRole(role);
  if (!parsed_role.ok()) return Fail(parsed_role.status());
  identity::RequestOptions options;
  options.trust_domain = trust_domain;
  options.org = org;
  options.role = *parsed_role;
  options.name = name;
  options.out_dir = out;
  options.dns_names = dns;
  options.ip_addresses = ips;
  if (options.role == identity::Role::kNode && dns.empty() && ips.empty()) {
    // As `certs issue`: a node certificate names some address, or every
    // partner that dials it logs a server-name mismatch on each connection.
    options.dns_names = {"localhost"};
    options.ip_addresses = {"127.0.0.1"};
  }
  absl::Status s = CertsRequest(options, std::cout);
  return s.ok() ? 0 : Fail(s);
}

int RunCertsSign(const std::string& ca, const std::string& csr_file, const std::string& out,
                 int days, const std::string& org, const std::string& role, bool dry_run) {
  identity::SignOptions options;
  options.out_dir = out;
  options.days = days;
  options.expect.org = org;
  if (!role.empty()) {
    absl::StatusOr<identity::Role> parsed_role = identity::ParseRole(role);
    if (!parsed_role.ok()) return Fail(parsed_role.status());
    options.expect.role = *parsed_role;
  }
  absl::Status s = CertsSign(ca, csr_file, options, dry_run, std::cout);
  return s.ok() ? 0 : Fail(s);
}

}  // namespace fedshare::client
