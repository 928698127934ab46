#include "node/identity/x509_verify.h"

#include <openssl/sha.h>

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "node/identity/openssl_util.h"

namespace fedshare::identity {

using internal::X509Ptr;

struct TrustBundle::Impl {
  internal::StorePtr store;
  size_t size = 0;
  std::string fingerprint;
};

absl::StatusOr<TrustBundle> TrustBundle::FromPem(absl::string_view pem, absl::string_view source) {
  absl::StatusOr<std::vector<X509Ptr>> certs = internal::ParseCertificates(pem);
  if (!certs.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", certs.status().message()));
  }
  if (certs->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": no PEM certificate in it"));
  }
  auto impl = std::make_shared<Impl>();
  impl->store.reset(X509_STORE_new());
  if (impl->store == nullptr) return absl::ResourceExhaustedError("X509_STORE_new failed");
  for (const X509Ptr& cert : *certs) {
    // X509_STORE_add_cert takes its own reference.
    if (X509_STORE_add_cert(impl->store.get(), cert.get()) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": cannot add CA certificate: ", internal::OpenSslError()));
    }
  }
  impl->size = certs->size();
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(pem.data()), pem.size(), md);
  impl->fingerprint =
      absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(md), sizeof(md)));
  return TrustBundle(std::move(impl));
}

size_t TrustBundle::size() const { return impl_->size; }
const std::string& TrustBundle::fingerprint() const { return impl_->fingerprint; }

namespace {

absl::Status Refuse(absl::string_view why) {
  return absl::UnauthenticatedError(absl::StrCat("peer certificate refused: ", why));
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

absl::Status ChainError(X509_STORE_CTX* ctx, absl::Time now) {
  int err = X509_STORE_CTX_get_error(ctx);
  X509* cert = X509_STORE_CTX_get_current_cert(ctx);
  std::string subject = cert == nullptr ? "?" : internal::NameToString(X509_get_subject_name(cert));
  switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return Refuse(absl::StrCat("certificate '", subject, "' expired at ",
                                 Rfc3339(internal::Asn1TimeToTime(X509_get0_notAfter(cert))),
                                 " (now ", Rfc3339(now), ")"));
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return Refuse(absl::StrCat("certificate '", subject, "' is not valid before ",
                                 Rfc3339(internal::Asn1TimeToTime(X509_get0_notBefore(cert))),
                                 " (now ", Rfc3339(now), ")"));
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE: {
      std::string issuer =
          cert == nullptr ? "?" : internal::NameToString(X509_get_issuer_name(cert));
      return Refuse(absl::StrCat("issuer '", issuer, "' of '", subject,
                                 "' is not a trusted CA of this federation (",
                                 X509_verify_cert_error_string(err), ")"));
    }
    default:
      return Refuse(absl::StrCat("chain verification failed at '", subject,
                                 "': ", X509_verify_cert_error_string(err)));
  }
}

}  // namespace

absl::StatusOr<VerifiedPeer> VerifyPeer(absl::string_view leaf_pem, absl::string_view chain_pem,
                                        const TrustBundle& bundle, absl::string_view trust_domain,
                                        absl::Time now) {
  if (trust_domain.empty()) {
    return absl::InvalidArgumentError("VerifyPeer needs the expected trust domain");
  }
  if (leaf_pem.empty()) return Refuse("no client certificate was presented");
  absl::StatusOr<std::vector<X509Ptr>> leaves = internal::ParseCertificates(leaf_pem);
  if (!leaves.ok()) return Refuse(leaves.status().message());
  if (leaves->empty()) return Refuse("no PEM certificate in what the peer presented");
  X509* leaf = (*leaves)[0].get();

  absl::StatusOr<std::vector<X509Ptr>> chain = internal::ParseCertificates(chain_pem);
  if (!chain.ok()) return Refuse(absl::StrCat("chain: ", chain.status().message()));
  internal::X509StackPtr untrusted(sk_X509_new_null());
  if (untrusted == nullptr) return absl::ResourceExhaustedError("sk_X509_new_null failed");
  for (X509Ptr& c : *chain) {
    if (sk_X509_push(untrusted.get(), c.get()) == 0) {
      return absl::ResourceExhaustedError("sk_X509_push failed");
    }
    c.release();  // now owned by `untrusted`
  }

  internal::StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (ctx == nullptr ||
      X509_STORE_CTX_init(ctx.get(), bundle.impl().store.get(), leaf, untrusted.get()) != 1) {
    return absl::ResourceExhaustedError(
        absl::StrCat("X509_STORE_CTX_init failed: ", internal::OpenSslError()));
  }
  X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()), absl::ToTimeT(now));
  if (X509_verify_cert(ctx.get()) != 1) return ChainError(ctx.get(), now);

  absl::Time valid_until = absl::InfiniteFuture();
  STACK_OF(X509)* verified = X509_STORE_CTX_get0_chain(ctx.get());
  for (int i = 0; i < sk_X509_num(verified); ++i) {
    valid_until = std::min(
        valid_until, internal::Asn1TimeToTime(X509_get0_notAfter(sk_X509_value(verified, i))));
  }

  if ((X509_get_extension_flags(leaf) & EXFLAG_CA) != 0) {
    return Refuse(
        "it is a CA certificate (basicConstraints CA=TRUE); a node or person needs a leaf "
        "certificate issued by the CA");
  }

  std::vector<std::string> uris = internal::UriSans(leaf);
  if (uris.empty()) {
    return Refuse(
        absl::StrCat("it has no URI SAN; it must carry exactly one SPIFFE ID such as "
                     "spiffe://",
                     trust_domain, "/org/<org_id>/node"));
  }
  if (uris.size() > 1) {
    return Refuse(absl::StrCat("it has ", uris.size(), " URI SANs (", absl::StrJoin(uris, ", "),
                               "); exactly one SPIFFE ID is allowed"));
  }
  absl::StatusOr<Identity> id = ParseSpiffeId(uris[0]);
  if (!id.ok()) return Refuse(id.status().message());
  if (id->trust_domain != trust_domain) {
    return Refuse(absl::StrCat("SPIFFE ID ", id->spiffe_id, " is in trust domain '",
                               id->trust_domain, "', not this federation's '", trust_domain, "'"));
  }
  return VerifiedPeer{*std::move(id), valid_until, internal::Fingerprint(leaf)};
}

absl::StatusOr<Identity> VerifyPeerCertificate(absl::string_view leaf_pem,
                                               absl::string_view chain_pem,
                                               const TrustBundle& bundle,
                                               absl::string_view trust_domain, absl::Time now) {
  absl::StatusOr<VerifiedPeer> peer = VerifyPeer(leaf_pem, chain_pem, bundle, trust_domain, now);
  if (!peer.ok()) return peer.status();
  return std::move(peer->identity);
}

absl::StatusOr<CertificateInfo> InspectCertificate(absl::string_view pem) {
  absl::StatusOr<std::vector<X509Ptr>> certs = internal::ParseCertificates(pem);
  if (!certs.ok()) return certs.status();
  if (certs->empty()) return absl::InvalidArgumentError("no PEM certificate");
  X509* cert = (*certs)[0].get();
  CertificateInfo info;
  info.subject = internal::NameToString(X509_get_subject_name(cert));
  info.issuer = internal::NameToString(X509_get_issuer_name(cert));
  info.serial_hex = internal::SerialHex(cert);
  info.fingerprint = internal::Fingerprint(cert);
  info.not_before = internal::Asn1TimeToTime(X509_get0_notBefore(cert));
  info.not_after = internal::Asn1TimeToTime(X509_get0_notAfter(cert));
  info.is_ca = (X509_get_extension_flags(cert) & EXFLAG_CA) != 0;
  info.uri_sans = internal::UriSans(cert);
  return info;
}

}  // namespace fedshare::identity
