// Internal to node/identity: the pieces of the development CA that
// IssueCertificate (cert_issuer.cc) and certificate requests (cert_request.cc)
// share, so both issue certificates of exactly one profile.
#ifndef FEDSHARE_NODE_IDENTITY_ISSUER_INTERNAL_H_
#define FEDSHARE_NODE_IDENTITY_ISSUER_INTERNAL_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "node/identity/cert_issuer.h"
#include "node/identity/openssl_util.h"
#include "node/identity/spiffe.h"

namespace fedshare::identity::internal {

// dir/file.
std::string Join(const std::string& dir, absl::string_view file);
// Creates `dir` and its parents. INVALID_ARGUMENT if empty.
absl::Status EnsureDir(const std::string& dir);
// A fresh EC P-256 key.
absl::StatusOr<PkeyPtr> NewKey();
// Letters, digits, '-', '.', '*'; 1 to 253 characters.
bool IsDnsName(absl::string_view s);
// A subjectAltName value: URIs as given, DNS names and IP addresses checked
// (INVALID_ARGUMENT naming a bad one).
absl::StatusOr<GeneralNamesPtr> MakeSubjectAltNames(const std::vector<std::string>& uris,
                                                    const std::vector<std::string>& dns_names,
                                                    const std::vector<std::string>& ips);
// Adds CN=`cn` (cut to 64 characters) to `name`.
absl::Status SetCommonName(X509_NAME* name, absl::string_view cn);
// The subject CN fedshare gives an identity: "<org> node" or
// "<name> (<role>, <org>)", at most 64 characters.
std::string CommonNameFor(const std::string& org, Role role, const std::string& name);

// A CA dir as CreateCa wrote it, loaded and checked (key matches certificate).
struct LoadedCa {
  X509Ptr cert;
  PkeyPtr key;
  std::string cert_pem;
  std::string trust_domain;
};
absl::StatusOr<LoadedCa> LoadCa(const std::string& ca_dir);

// A leaf certificate (PEM) for the public half of `subject_key`, with `uris`
// as its URI SANs and everything else from `options` (role, org, name for the
// CN; DNS names and IPs for nodes; validity capped at the CA's).
absl::StatusOr<std::string> SignLeaf(const LoadedCa& ca, EVP_PKEY* subject_key,
                                     const IssueOptions& options,
                                     const std::vector<std::string>& uris);

}  // namespace fedshare::identity::internal

#endif  // FEDSHARE_NODE_IDENTITY_ISSUER_INTERNAL_H_
