// Internal to node/identity: owning pointers and conversions for OpenSSL types.
#ifndef FEDSHARE_NODE_IDENTITY_OPENSSL_UTIL_H_
#define FEDSHARE_NODE_IDENTITY_OPENSSL_UTIL_H_

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fedshare::identity::internal {

struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct StoreFree {
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
};
struct GeneralNamesFree {
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
};
struct X509StackFree {
  void operator()(STACK_OF(X509) * p) const { sk_X509_pop_free(p, X509_free); }
};

using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using StorePtr = std::unique_ptr<X509_STORE, StoreFree>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, StoreCtxFree>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, GeneralNamesFree>;
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackFree>;

// The most recent OpenSSL error queue entry as text (and clears the queue).
std::string OpenSslError();

// Every certificate in `pem`, in order. INVALID_ARGUMENT if one does not parse;
// an empty vector if there is none.
absl::StatusOr<std::vector<X509Ptr>> ParseCertificates(absl::string_view pem);
// A PEM private key. INVALID_ARGUMENT if it does not parse.
absl::StatusOr<PkeyPtr> ParsePrivateKey(absl::string_view pem);

absl::StatusOr<std::string> CertificateToPem(X509* cert);
absl::StatusOr<std::string> PrivateKeyToPem(EVP_PKEY* key);

absl::Time Asn1TimeToTime(const ASN1_TIME* t);
std::string NameToString(const X509_NAME* name);
// SHA-256 of the DER encoding, lowercase hex.
std::string Fingerprint(X509* cert);
std::string SerialHex(X509* cert);
// The URI entries of the subjectAltName extension. A URI with an embedded NUL
// comes back with the NUL, so callers refuse it when parsing.
std::vector<std::string> UriSans(X509* cert);

}  // namespace fedshare::identity::internal

#endif  // FEDSHARE_NODE_IDENTITY_OPENSSL_UTIL_H_
