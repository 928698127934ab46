// X.509 verification of a peer's certificate against fedshare's rules
// (DESIGN §5): the chain must lead to a trusted CA at the given time, the leaf
// must not be a CA, and it must carry exactly one URI SAN that is a fedshare
// SPIFFE ID in the expected trust domain.
//
//   ASSIGN_OR_RETURN(TrustBundle bundle, TrustBundle::FromPem(ca_pem));
//   ASSIGN_OR_RETURN(Identity who,
//                    VerifyPeerCertificate(leaf_pem, "", bundle, "fed.example", clock->Now()));
//
// Every refusal is UNAUTHENTICATED with a message that says what is wrong with
// the certificate. Thread-safe: a TrustBundle is immutable and may be shared.
#ifndef FEDSHARE_NODE_IDENTITY_X509_VERIFY_H_
#define FEDSHARE_NODE_IDENTITY_X509_VERIFY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "node/identity/spiffe.h"

namespace fedshare::identity {

// A set of trusted CA certificates. Cheap to copy (shares its contents).
class TrustBundle {
 public:
  // Parses every certificate in `pem`. INVALID_ARGUMENT if there is none or
  // one does not parse; the message names `source` (a path, say).
  static absl::StatusOr<TrustBundle> FromPem(absl::string_view pem,
                                             absl::string_view source = "trust bundle");

  // Number of CA certificates.
  size_t size() const;
  // SHA-256 over the bundle's PEM text, in hex.
  const std::string& fingerprint() const;

  struct Impl;  // OpenSSL objects; defined in x509_verify.cc.
  const Impl& impl() const { return *impl_; }

 private:
  explicit TrustBundle(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// What a successful verification established.
struct VerifiedPeer {
  Identity identity;
  // The earliest notAfter in the verified chain: the result holds until then.
  absl::Time valid_until;
  // SHA-256 of the leaf's DER encoding, in hex.
  std::string leaf_fingerprint;
};

// Verifies `leaf_pem` (one PEM certificate) with the optional untrusted
// intermediates in `chain_pem` against `bundle` at time `now`, then checks the
// identity rules. `trust_domain` must be non-empty. UNAUTHENTICATED if: there
// is no certificate; it does not chain to a CA of the bundle; it is expired or
// not yet valid; it has basicConstraints CA=TRUE; it has no URI SAN, several,
// or one that is not a fedshare SPIFFE ID; the ID is in another trust domain.
absl::StatusOr<VerifiedPeer> VerifyPeer(absl::string_view leaf_pem, absl::string_view chain_pem,
                                        const TrustBundle& bundle, absl::string_view trust_domain,
                                        absl::Time now);

// VerifyPeer, returning just the identity.
absl::StatusOr<Identity> VerifyPeerCertificate(absl::string_view leaf_pem,
                                               absl::string_view chain_pem,
                                               const TrustBundle& bundle,
                                               absl::string_view trust_domain, absl::Time now);

// Facts about one PEM certificate, for tools and tests. INVALID_ARGUMENT if it
// does not parse.
struct CertificateInfo {
  std::string subject;
  std::string issuer;
  std::string serial_hex;
  std::string fingerprint;  // SHA-256 of DER, hex
  absl::Time not_before;
  absl::Time not_after;
  bool is_ca = false;
  std::vector<std::string> uri_sans;
};
absl::StatusOr<CertificateInfo> InspectCertificate(absl::string_view pem);

}  // namespace fedshare::identity

#endif  // FEDSHARE_NODE_IDENTITY_X509_VERIFY_H_
