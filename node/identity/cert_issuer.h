// A development certificate authority for a federation, through OpenSSL's API
// (no `openssl` binary). Backs `fedshare certs ca` and `fedshare certs issue`.
//
//   RETURN_IF_ERROR(CreateCa("fed.example", "/tmp/ca", 3650));
//   IssueOptions opts;
//   opts.org = "acme";
//   opts.role = Role::kNode;
//   opts.out_dir = "/tmp/acme";
//   RETURN_IF_ERROR(IssueCertificate("/tmp/ca", opts));
//   // /tmp/acme/{cert.pem,key.pem,ca.pem}; cert.pem's URI SAN is
//   // spiffe://fed.example/org/acme/node.
//
// Files written (keys mode 0600, through WriteFileAtomic so a reader such as a
// running node never sees a half-written file):
//   CA dir:   ca.pem (certificate), ca.key (private key), trust-domain (text)
//   out dir:  cert.pem, key.pem, ca.pem (a copy of the CA certificate)
// Keys are EC P-256, signatures ECDSA with SHA-256, serials random 128-bit.
// Functions are thread-compatible (two calls writing the same dir race).
#ifndef FEDSHARE_NODE_IDENTITY_CERT_ISSUER_H_
#define FEDSHARE_NODE_IDENTITY_CERT_ISSUER_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "node/identity/spiffe.h"

namespace fedshare::identity {

// File names inside a CA dir and an identity dir.
inline constexpr char kCaCertFile[] = "ca.pem";
inline constexpr char kCaKeyFile[] = "ca.key";
inline constexpr char kTrustDomainFile[] = "trust-domain";
inline constexpr char kCertFile[] = "cert.pem";
inline constexpr char kKeyFile[] = "key.pem";

struct CaOptions {
  std::string trust_domain;  // required, e.g. "fed.example"
  std::string out_dir;       // created if missing
  int days = 3650;
  // Start of validity; default now minus 5 minutes (clock skew).
  std::optional<absl::Time> not_before;
  // Replace an existing CA in out_dir. Off by default: overwriting a CA
  // orphans every certificate it issued.
  bool overwrite = false;
};

// Creates a self-signed CA: CA:TRUE (critical, pathlen 0), keyUsage
// keyCertSign+cRLSign, subject CN "fedshare development CA for <trust domain>",
// and the trust domain's own SPIFFE ID spiffe://<trust domain> as URI SAN.
// INVALID_ARGUMENT for a malformed trust domain or days < 1, ALREADY_EXISTS if
// out_dir already holds a CA key and !overwrite.
absl::Status CreateCa(const CaOptions& options);
absl::Status CreateCa(absl::string_view trust_domain, const std::string& out_dir, int days);

struct IssueOptions {
  std::string org;  // org_id, required
  Role role = Role::kNode;
  std::string name;     // required for operator/analyst, empty for node
  std::string out_dir;  // created if missing
  int days = 365;
  // Extra SANs for node certificates (ignored for people): a node is also a
  // TLS server, and tools that check host names expect these.
  std::vector<std::string> dns_names = {"localhost"};
  std::vector<std::string> ip_addresses = {"127.0.0.1"};
  // Start of validity; default now minus 5 minutes.
  std::optional<absl::Time> not_before;

  // Test-only knobs, to make certificates fedshare must refuse.
  // If set, these URI SANs (zero, one or several) replace the SPIFFE ID.
  std::optional<std::vector<std::string>> uri_sans_override;
  bool is_ca = false;                   // basicConstraints CA=TRUE on the leaf
  std::optional<absl::Time> not_after;  // overrides `days`
  std::string trust_domain_override;    // SPIFFE ID in another trust domain
};

// Issues a certificate signed by the CA in `ca_dir` (as made by CreateCa) for
// the identity in `options`, and writes cert.pem, key.pem and ca.pem to
// options.out_dir (existing files are replaced, which is how certificates are
// rotated under a running node). INVALID_ARGUMENT for bad org/role/name/days
// or SAN values, NOT_FOUND / FAILED_PRECONDITION if the CA dir is missing or
// its key does not match its certificate.
absl::Status IssueCertificate(const std::string& ca_dir, const IssueOptions& options);

// The trust domain of the CA in `ca_dir`: the trust-domain file, else the
// spiffe://<trust domain> URI SAN of ca.pem.
absl::StatusOr<std::string> ReadCaTrustDomain(const std::string& ca_dir);

// The SPIFFE ID IssueCertificate would write for `options` given the CA's trust
// domain (ignores uri_sans_override).
absl::StatusOr<std::string> SpiffeIdFor(absl::string_view ca_trust_domain,
                                        const IssueOptions& options);

}  // namespace fedshare::identity

#endif  // FEDSHARE_NODE_IDENTITY_CERT_ISSUER_H_
