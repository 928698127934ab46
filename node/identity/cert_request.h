// Certificate requests (PKCS#10), so an org joining a federation makes its
// private key on its own machine and the key never leaves it. Backs
// `fedshare certs request` (at the partner) and `fedshare certs sign` (at the
// CA holder).
//
//   // The partner:
//   RequestOptions r;
//   r.trust_domain = "fed.example";  // the federation's, from the CA holder
//   r.org = "acme";
//   r.role = Role::kNode;
//   r.out_dir = "/etc/fedshare/identity";
//   ASSIGN_OR_RETURN(RequestInfo made, CreateCertificateRequest(r));
//   // out_dir/key.pem (0600) stays; made.csr_path (acme-node.csr) is sent.
//
//   // The CA holder:
//   ASSIGN_OR_RETURN(RequestInfo seen, CheckCertificateRequest("/ca", csr_pem));  // show it
//   SignOptions s;
//   s.out_dir = "/outbox/acme";
//   ASSIGN_OR_RETURN(SignedRequest signed, SignCertificateRequest("/ca", csr_pem, s));
//   // /outbox/acme/{cert.pem,ca.pem} go back to the partner, next to its key.pem.
//
// A request is signed only if its signature verifies with its own key, the key
// is EC P-256 or P-384 or RSA of 2048 to 8192 bits, it names exactly one URI
// SAN that is a well-formed fedshare SPIFFE ID of the CA's trust domain, DNS
// and IP SANs appear only for a node, no other SAN is present, its subject CN
// (if any) is the one fedshare gives that identity, and it matches the org and
// role the CA holder expects (when given). The certificate issued has the same
// profile as IssueCertificate's; any other extension the request asks for is
// ignored. Thread-compatible.
#ifndef FEDSHARE_NODE_IDENTITY_CERT_REQUEST_H_
#define FEDSHARE_NODE_IDENTITY_CERT_REQUEST_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "node/identity/spiffe.h"

namespace fedshare::identity {

// Requests larger than this are refused unread.
inline constexpr size_t kMaxRequestBytes = 64 * 1024;

struct RequestOptions {
  std::string trust_domain;  // required: the federation's trust domain
  std::string org;           // required
  Role role = Role::kNode;
  std::string name;     // required for operator/analyst, empty for node
  std::string out_dir;  // created if missing; must not hold a key.pem yet
  // Extra SANs for a node (refused for people). None by default: fedshare
  // checks SPIFFE IDs, not host names.
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
};

// What a request asks for, as a person checks it.
struct RequestInfo {
  Identity identity;            // parsed from the SPIFFE ID
  std::string key_type;         // "EC P-256", "RSA 3072", ...
  std::string key_fingerprint;  // SHA-256 of the public key (DER), hex in groups of 4
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  std::string csr_path;  // CreateCertificateRequest only: the file written
};

// Makes a fresh EC P-256 key and a request for the identity, and writes
// out_dir/key.pem (mode 0600) and out_dir/<org>-<role>[-<name>].csr.
// INVALID_ARGUMENT for a malformed trust domain, org, role/name combination or
// SAN, or SANs for a person; ALREADY_EXISTS if out_dir already holds key.pem
// (a running node may be using it).
absl::StatusOr<RequestInfo> CreateCertificateRequest(const RequestOptions& options);

// Expectations of the CA holder, each checked when set.
struct RequestExpectation {
  std::string org;
  std::optional<Role> role;
};

// Checks `csr_pem` against the CA in `ca_dir` as described above.
// INVALID_ARGUMENT saying what is wrong with the request; PERMISSION_DENIED if
// it is for another trust domain or does not match `expect`;
// NOT_FOUND / FAILED_PRECONDITION for a missing or broken CA dir.
absl::StatusOr<RequestInfo> CheckCertificateRequest(const std::string& ca_dir,
                                                    absl::string_view csr_pem,
                                                    const RequestExpectation& expect = {});

struct SignOptions {
  std::string out_dir;  // created if missing; receives cert.pem and ca.pem
  int days = 365;       // 1 to 36500, capped at the CA's own end
  RequestExpectation expect;
};

struct SignedRequest {
  RequestInfo request;
  absl::Time not_before;
  absl::Time not_after;
  std::string cert_path;
  std::string ca_path;
};

// CheckCertificateRequest, then issues the certificate and writes
// out_dir/cert.pem and out_dir/ca.pem (never a key). Errors as above, and
// INVALID_ARGUMENT for days out of range.
absl::StatusOr<SignedRequest> SignCertificateRequest(const std::string& ca_dir,
                                                     absl::string_view csr_pem,
                                                     const SignOptions& options);

}  // namespace fedshare::identity

#endif  // FEDSHARE_NODE_IDENTITY_CERT_REQUEST_H_
