#include "node/identity/tls_files.h"

#include <openssl/err.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "node/common/files.h"
#include "node/common/status_macros.h"
#include "node/identity/openssl_util.h"
#include "node/identity/x509_verify.h"

namespace fedshare::identity {
namespace {

absl::Status Annotate(const absl::Status& s, absl::string_view field, const std::string& path) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(field, " (", path, "): ", s.message()));
}

absl::StatusOr<std::string> ReadField(const std::string& path, absl::string_view field) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return Annotate(text.status(), field, path);
  return text;
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::string DirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string ExpiryWarning(absl::string_view what, absl::Time not_after, absl::Time now,
                          absl::string_view how) {
  int days = static_cast<int>(std::floor(absl::ToDoubleHours(not_after - now) / 24));
  return absl::StrCat(what, " expires at ", Rfc3339(not_after), " (in ", days, " day",
                      days == 1 ? "" : "s", "); ", how);
}

}  // namespace

absl::Status CheckTlsPem(absl::string_view cert_pem, absl::string_view key_pem,
                         absl::string_view ca_pem) {
  FEDSHARE_ASSIGN_OR_RETURN(std::vector<internal::X509Ptr> cas,
                            internal::ParseCertificates(ca_pem));
  if (cas.empty()) return absl::InvalidArgumentError("CA bundle: no PEM certificate in it");
  if (cert_pem.empty() && key_pem.empty()) return absl::OkStatus();
  if (cert_pem.empty() || key_pem.empty()) {
    return absl::InvalidArgumentError(
        "a certificate and its key go together: give both or neither");
  }
  FEDSHARE_ASSIGN_OR_RETURN(std::vector<internal::X509Ptr> certs,
                            internal::ParseCertificates(cert_pem));
  if (certs.empty()) return absl::InvalidArgumentError("certificate: no PEM certificate in it");
  FEDSHARE_ASSIGN_OR_RETURN(internal::PkeyPtr key, internal::ParsePrivateKey(key_pem));
  if (X509_check_private_key(certs[0].get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the private key does not belong to the certificate");
  }
  return absl::OkStatus();
}

absl::Status CheckTlsFiles(const std::string& cert_file, const std::string& key_file,
                           const std::string& ca_file, absl::string_view field_prefix) {
  const std::string cert_field = absl::StrCat(field_prefix, "cert_file");
  const std::string key_field = absl::StrCat(field_prefix, "key_file");
  const std::string ca_field = absl::StrCat(field_prefix, "ca_file");
  if (ca_file.empty()) return absl::InvalidArgumentError(absl::StrCat(ca_field, " is required"));
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(cert_field, " and ", key_field, " go together: give both or neither"));
  }
  FEDSHARE_ASSIGN_OR_RETURN(std::string ca, ReadField(ca_file, ca_field));
  FEDSHARE_RETURN_IF_ERROR(Annotate(CheckTlsPem("", "", ca), ca_field, ca_file));
  if (cert_file.empty()) return absl::OkStatus();
  FEDSHARE_ASSIGN_OR_RETURN(std::string cert, ReadField(cert_file, cert_field));
  FEDSHARE_ASSIGN_OR_RETURN(std::string key, ReadField(key_file, key_field));
  return Annotate(CheckTlsPem(cert, key, ca), cert_field, cert_file);
}

absl::StatusOr<std::vector<std::string>> CheckOwnCertificate(const std::string& cert_file,
                                                             const std::string& ca_file,
                                                             absl::string_view trust_domain,
                                                             absl::string_view org_id,
                                                             absl::Time now) {
  FEDSHARE_ASSIGN_OR_RETURN(std::string cert, ReadField(cert_file, "tls.cert_file"));
  FEDSHARE_ASSIGN_OR_RETURN(std::string ca, ReadField(ca_file, "tls.ca_file"));
  FEDSHARE_ASSIGN_OR_RETURN(TrustBundle bundle, TrustBundle::FromPem(ca, ca_file));
  const std::string renew =
      absl::StrCat("renew it with `fedshare certs request --trust-domain ", trust_domain,
                   " --org ", org_id, " --role node --out NEW_DIR` and send NEW_DIR's request to "
                   "your federation's CA holder, or, holding the CA, with `fedshare certs issue "
                   "--ca CA_DIR --org ", org_id, " --role node --out ", DirOf(cert_file), "`");
  const std::string what = absl::StrCat("this node's certificate (tls.cert_file ", cert_file, ")");
  absl::StatusOr<VerifiedPeer> verified = VerifyPeer(cert, "", bundle, trust_domain, now);
  if (!verified.ok()) {
    absl::string_view why = verified.status().message();
    absl::ConsumePrefix(&why, "peer certificate refused: ");
    return absl::FailedPreconditionError(
        absl::StrCat(what, " would be refused by every peer: ", why, "; ", renew));
  }
  const Identity& id = verified->identity;
  if (id.org_id != org_id || id.role != Role::kNode) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " names ", id.spiffe_id, ", but this node is org ", org_id,
                     " and needs spiffe://", trust_domain, "/org/", org_id, "/node; ", renew));
  }
  std::vector<std::string> warnings;
  FEDSHARE_ASSIGN_OR_RETURN(std::vector<internal::X509Ptr> leaf, internal::ParseCertificates(cert));
  absl::Time leaf_until = internal::Asn1TimeToTime(X509_get0_notAfter(leaf[0].get()));
  if (leaf_until - now < kExpiryWarning) {
    warnings.push_back(ExpiryWarning(what, leaf_until, now, renew));
  }
  FEDSHARE_ASSIGN_OR_RETURN(std::vector<internal::X509Ptr> cas, internal::ParseCertificates(ca));
  for (const internal::X509Ptr& c : cas) {
    absl::Time until = internal::Asn1TimeToTime(X509_get0_notAfter(c.get()));
    if (until - now >= kExpiryWarning) continue;
    warnings.push_back(ExpiryWarning(
        absl::StrCat("CA certificate '", internal::NameToString(X509_get_subject_name(c.get())),
                     "' in tls.ca_file ", ca_file),
        until, now,
        "every certificate it issued stops working then; ask your federation's CA holder "
        "for a new CA bundle"));
  }
  return warnings;
}

}  // namespace fedshare::identity
