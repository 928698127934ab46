#include "client/certs_commands.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "node/common/files.h"
#include "node/common/status_macros.h"
#include "node/common/time_util.h"
#include "node/identity/cert_issuer.h"

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

}  // namespace fedshare::client
