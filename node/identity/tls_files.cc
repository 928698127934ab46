#include "node/identity/tls_files.h"

#include <openssl/err.h>

#include "absl/strings/str_cat.h"
#include "node/common/files.h"
#include "node/common/status_macros.h"
#include "node/identity/openssl_util.h"

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

}  // namespace fedshare::identity
