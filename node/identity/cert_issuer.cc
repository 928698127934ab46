#include "node/identity/cert_issuer.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "node/common/files.h"
#include "node/common/status_macros.h"
#include "node/identity/issuer_internal.h"
#include "node/identity/openssl_util.h"

namespace fedshare::identity {
namespace internal {

std::string Join(const std::string& dir, absl::string_view file) {
  return (std::filesystem::path(dir) / std::string(file)).string();
}

absl::Status EnsureDir(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("an output directory is required");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create directory ", dir, ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<PkeyPtr> NewKey() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) {
    return absl::InternalError(absl::StrCat("EC P-256 key generation failed: ", OpenSslError()));
  }
  return PkeyPtr(key);
}

bool IsDnsName(absl::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '*') {
      return false;
    }
  }
  return true;
}

// Built entry by entry, so no value is parsed as config syntax.
absl::StatusOr<GeneralNamesPtr> MakeSubjectAltNames(const std::vector<std::string>& uris,
                                                    const std::vector<std::string>& dns_names,
                                                    const std::vector<std::string>& ips) {
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  if (names == nullptr) return absl::ResourceExhaustedError("sk_GENERAL_NAME_new_null failed");
  auto add_string = [&](int type, const std::string& value) -> absl::Status {
    GENERAL_NAME* gn = GENERAL_NAME_new();
    ASN1_IA5STRING* s = ASN1_IA5STRING_new();
    if (gn == nullptr || s == nullptr ||
        ASN1_STRING_set(s, value.data(), static_cast<int>(value.size())) != 1) {
      GENERAL_NAME_free(gn);
      ASN1_IA5STRING_free(s);
      return absl::InternalError(absl::StrCat("cannot encode SAN ", value));
    }
    GENERAL_NAME_set0_value(gn, type, s);
    sk_GENERAL_NAME_push(names.get(), gn);
    return absl::OkStatus();
  };
  for (const std::string& uri : uris) FEDSHARE_RETURN_IF_ERROR(add_string(GEN_URI, uri));
  for (const std::string& dns : dns_names) {
    if (!IsDnsName(dns))
      return absl::InvalidArgumentError(absl::StrCat("bad DNS name '", dns, "'"));
    FEDSHARE_RETURN_IF_ERROR(add_string(GEN_DNS, dns));
  }
  for (const std::string& ip : ips) {
    ASN1_OCTET_STRING* octets = a2i_IPADDRESS(ip.c_str());
    if (octets == nullptr) {
      ERR_clear_error();
      return absl::InvalidArgumentError(absl::StrCat("bad IP address '", ip, "'"));
    }
    GENERAL_NAME* gn = GENERAL_NAME_new();
    if (gn == nullptr) {
      ASN1_OCTET_STRING_free(octets);
      return absl::ResourceExhaustedError("GENERAL_NAME_new failed");
    }
    GENERAL_NAME_set0_value(gn, GEN_IPADD, octets);
    sk_GENERAL_NAME_push(names.get(), gn);
  }
  return names;
}

absl::Status SetCommonName(X509_NAME* name, absl::string_view cn) {
  // CN is limited to 64 characters.
  std::string text(cn.substr(0, 64));
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(text.c_str()), -1, -1,
                                 0) != 1) {
    return absl::InternalError(absl::StrCat("cannot set subject: ", OpenSslError()));
  }
  return absl::OkStatus();
}

std::string CommonNameFor(const std::string& org, Role role, const std::string& name) {
  std::string cn = role == Role::kNode ? absl::StrCat(org, " node")
                                       : absl::StrCat(name, " (", RoleName(role), ", ", org, ")");
  return cn.substr(0, 64);
}

}  // namespace internal

namespace {

using internal::EnsureDir;
using internal::Join;
using internal::NewKey;
using internal::OpenSslError;
using internal::PkeyPtr;
using internal::SetCommonName;
using internal::X509Ptr;

constexpr absl::Duration kSkew = absl::Minutes(5);

absl::Status SetRandomSerial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError(absl::StrCat("RAND_bytes failed: ", OpenSslError()));
  }
  bytes[0] &= 0x7f;  // a positive INTEGER in 16 bytes of DER
  bytes[0] |= 0x40;  // and never a short (or zero) one
  BIGNUM* bn = BN_bin2bn(bytes, sizeof(bytes), nullptr);
  bool ok = bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != nullptr;
  BN_free(bn);
  if (!ok) return absl::InternalError(absl::StrCat("cannot set serial: ", OpenSslError()));
  return absl::OkStatus();
}

absl::Status SetValidity(X509* cert, absl::Time not_before, absl::Time not_after) {
  if (not_after <= not_before) {
    return absl::InvalidArgumentError("certificate would end before it starts");
  }
  if (ASN1_TIME_set(X509_getm_notBefore(cert), absl::ToTimeT(not_before)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), absl::ToTimeT(not_after)) == nullptr) {
    return absl::InternalError(absl::StrCat("cannot set validity: ", OpenSslError()));
  }
  return absl::OkStatus();
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot make extension ", OBJ_nid2sn(nid), "=", value, ": ", OpenSslError()));
  }
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return absl::InternalError(absl::StrCat("cannot add extension: ", OpenSslError()));
  return absl::OkStatus();
}

absl::Status AddSubjectAltNames(X509* cert, const std::vector<std::string>& uris,
                                const std::vector<std::string>& dns_names,
                                const std::vector<std::string>& ips) {
  if (uris.empty() && dns_names.empty() && ips.empty()) return absl::OkStatus();
  FEDSHARE_ASSIGN_OR_RETURN(internal::GeneralNamesPtr names,
                            internal::MakeSubjectAltNames(uris, dns_names, ips));
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return absl::InternalError(absl::StrCat("cannot add subjectAltName: ", OpenSslError()));
  }
  return absl::OkStatus();
}

absl::Status Sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) == 0) {
    return absl::InternalError(absl::StrCat("signing failed: ", OpenSslError()));
  }
  return absl::OkStatus();
}

absl::Status CheckDays(int days) {
  if (days < 1 || days > 36500) {
    return absl::InvalidArgumentError(absl::StrCat("days must be 1 to 36500, got ", days));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CreateCa(const CaOptions& options) {
  if (!IsValidTrustDomain(options.trust_domain)) {
    return absl::InvalidArgumentError(
        absl::StrCat("trust domain '", options.trust_domain,
                     "' must be 1-255 of lowercase letters, digits, '.', '-', '_'"));
  }
  FEDSHARE_RETURN_IF_ERROR(CheckDays(options.days));
  FEDSHARE_RETURN_IF_ERROR(EnsureDir(options.out_dir));
  const std::string key_path = Join(options.out_dir, kCaKeyFile);
  if (!options.overwrite && std::filesystem::exists(key_path)) {
    return absl::AlreadyExistsError(
        absl::StrCat(key_path,
                     " exists; refusing to replace a CA (its certificates would no "
                     "longer verify). Choose another directory."));
  }

  FEDSHARE_ASSIGN_OR_RETURN(PkeyPtr key, NewKey());
  X509Ptr cert(X509_new());
  if (cert == nullptr) return absl::ResourceExhaustedError("X509_new failed");
  X509_set_version(cert.get(), X509_VERSION_3);
  FEDSHARE_RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  absl::Time not_before = options.not_before.value_or(absl::Now() - kSkew);
  FEDSHARE_RETURN_IF_ERROR(
      SetValidity(cert.get(), not_before, not_before + absl::Hours(24) * options.days));
  FEDSHARE_RETURN_IF_ERROR(
      SetCommonName(X509_get_subject_name(cert.get()),
                    absl::StrCat("fedshare development CA for ", options.trust_domain)));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  X509_set_pubkey(cert.get(), key.get());
  FEDSHARE_RETURN_IF_ERROR(
      AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  FEDSHARE_RETURN_IF_ERROR(
      AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  FEDSHARE_RETURN_IF_ERROR(
      AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
  FEDSHARE_RETURN_IF_ERROR(
      AddExtension(cert.get(), cert.get(), NID_authority_key_identifier, "keyid:always"));
  FEDSHARE_RETURN_IF_ERROR(
      AddSubjectAltNames(cert.get(), {absl::StrCat("spiffe://", options.trust_domain)}, {}, {}));
  FEDSHARE_RETURN_IF_ERROR(Sign(cert.get(), key.get()));

  FEDSHARE_ASSIGN_OR_RETURN(std::string key_pem, internal::PrivateKeyToPem(key.get()));
  FEDSHARE_ASSIGN_OR_RETURN(std::string cert_pem, internal::CertificateToPem(cert.get()));
  FEDSHARE_RETURN_IF_ERROR(WriteFileAtomic(key_path, key_pem, 0600));
  FEDSHARE_RETURN_IF_ERROR(WriteFileAtomic(Join(options.out_dir, kCaCertFile), cert_pem, 0644));
  return WriteFileAtomic(Join(options.out_dir, kTrustDomainFile),
                         absl::StrCat(options.trust_domain, "\n"), 0644);
}

absl::Status CreateCa(absl::string_view trust_domain, const std::string& out_dir, int days) {
  CaOptions options;
  options.trust_domain = std::string(trust_domain);
  options.out_dir = out_dir;
  options.days = days;
  return CreateCa(options);
}

absl::StatusOr<std::string> ReadCaTrustDomain(const std::string& ca_dir) {
  absl::StatusOr<std::string> text = ReadFile(Join(ca_dir, kTrustDomainFile));
  if (text.ok()) {
    std::string td(absl::StripAsciiWhitespace(*text));
    if (!IsValidTrustDomain(td)) {
      return absl::FailedPreconditionError(absl::StrCat(Join(ca_dir, kTrustDomainFile), " holds '",
                                                        td, "', which is not a trust domain"));
    }
    return td;
  }
  if (!absl::IsNotFound(text.status())) return text.status();
  FEDSHARE_ASSIGN_OR_RETURN(std::string pem, ReadFile(Join(ca_dir, kCaCertFile)));
  FEDSHARE_ASSIGN_OR_RETURN(std::vector<X509Ptr> certs, internal::ParseCertificates(pem));
  if (certs.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(Join(ca_dir, kCaCertFile), " holds no certificate"));
  }
  for (const std::string& uri : internal::UriSans(certs[0].get())) {
    absl::string_view td = uri;
    if (absl::ConsumePrefix(&td, "spiffe://") && IsValidTrustDomain(td)) return std::string(td);
  }
  return absl::FailedPreconditionError(
      absl::StrCat("cannot tell the trust domain of the CA in ", ca_dir, ": no ", kTrustDomainFile,
                   " file and no spiffe://<trust domain> URI SAN in ", kCaCertFile));
}

absl::StatusOr<std::string> SpiffeIdFor(absl::string_view ca_trust_domain,
                                        const IssueOptions& options) {
  absl::string_view td =
      options.trust_domain_override.empty() ? ca_trust_domain : options.trust_domain_override;
  return MakeSpiffeId(td, options.org, options.role, options.name);
}

namespace internal {

absl::StatusOr<LoadedCa> LoadCa(const std::string& ca_dir) {
  LoadedCa ca;
  FEDSHARE_ASSIGN_OR_RETURN(ca.trust_domain, ReadCaTrustDomain(ca_dir));
  FEDSHARE_ASSIGN_OR_RETURN(ca.cert_pem, ReadFile(Join(ca_dir, kCaCertFile)));
  FEDSHARE_ASSIGN_OR_RETURN(std::string ca_key_pem, ReadFile(Join(ca_dir, kCaKeyFile)));
  FEDSHARE_ASSIGN_OR_RETURN(std::vector<X509Ptr> ca_certs, ParseCertificates(ca.cert_pem));
  if (ca_certs.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(Join(ca_dir, kCaCertFile), " is empty"));
  }
  ca.cert = std::move(ca_certs[0]);
  FEDSHARE_ASSIGN_OR_RETURN(ca.key, ParsePrivateKey(ca_key_pem));
  if (X509_check_private_key(ca.cert.get(), ca.key.get()) != 1) {
    ERR_clear_error();
    return absl::FailedPreconditionError(
        absl::StrCat(Join(ca_dir, kCaKeyFile), " is not the key of ", Join(ca_dir, kCaCertFile)));
  }
  return ca;
}

absl::StatusOr<std::string> SignLeaf(const LoadedCa& ca, EVP_PKEY* subject_key,
                                     const IssueOptions& options,
                                     const std::vector<std::string>& uris) {
  FEDSHARE_RETURN_IF_ERROR(CheckDays(options.days));
  X509* issuer = ca.cert.get();
  X509Ptr cert(X509_new());
  if (cert == nullptr) return absl::ResourceExhaustedError("X509_new failed");
  X509_set_version(cert.get(), X509_VERSION_3);
  FEDSHARE_RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  absl::Time not_before = options.not_before.value_or(absl::Now() - kSkew);
  absl::Time not_after;
  if (options.not_after.has_value()) {
    not_after = *options.not_after;
  } else {
    // A certificate cannot usefully outlive its CA.
    not_after = std::min(not_before + absl::Hours(24) * options.days,
                         Asn1TimeToTime(X509_get0_notAfter(issuer)));
  }
  FEDSHARE_RETURN_IF_ERROR(SetValidity(cert.get(), not_before, not_after));
  FEDSHARE_RETURN_IF_ERROR(SetCommonName(X509_get_subject_name(cert.get()),
                                         CommonNameFor(options.org, options.role, options.name)));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer));
  X509_set_pubkey(cert.get(), subject_key);
  if (options.is_ca) {
    FEDSHARE_RETURN_IF_ERROR(
        AddExtension(cert.get(), issuer, NID_basic_constraints, "critical,CA:TRUE"));
    FEDSHARE_RETURN_IF_ERROR(
        AddExtension(cert.get(), issuer, NID_key_usage, "critical,digitalSignature,keyCertSign"));
  } else {
    FEDSHARE_RETURN_IF_ERROR(
        AddExtension(cert.get(), issuer, NID_basic_constraints, "critical,CA:FALSE"));
    FEDSHARE_RETURN_IF_ERROR(
        AddExtension(cert.get(), issuer, NID_key_usage, "critical,digitalSignature"));
  }
  // Every node is both a TLS server (its listeners) and a client (fan-out,
  // call-home); people are clients, but one profile keeps tools simple.
  FEDSHARE_RETURN_IF_ERROR(
      AddExtension(cert.get(), issuer, NID_ext_key_usage, "serverAuth,clientAuth"));
  FEDSHARE_RETURN_IF_ERROR(AddExtension(cert.get(), issuer, NID_subject_key_identifier, "hash"));
  FEDSHARE_RETURN_IF_ERROR(AddExtension(cert.get(), issuer, NID_authority_key_identifier, "keyid"));
  bool node = options.role == Role::kNode;
  FEDSHARE_RETURN_IF_ERROR(
      AddSubjectAltNames(cert.get(), uris, node ? options.dns_names : std::vector<std::string>{},
                         node ? options.ip_addresses : std::vector<std::string>{}));
  FEDSHARE_RETURN_IF_ERROR(Sign(cert.get(), ca.key.get()));
  return CertificateToPem(cert.get());
}

}  // namespace internal

absl::Status IssueCertificate(const std::string& ca_dir, const IssueOptions& options) {
  FEDSHARE_RETURN_IF_ERROR(CheckDays(options.days));
  FEDSHARE_ASSIGN_OR_RETURN(internal::LoadedCa ca, internal::LoadCa(ca_dir));
  std::vector<std::string> uris;
  if (options.uri_sans_override.has_value()) {
    uris = *options.uri_sans_override;
  } else {
    FEDSHARE_ASSIGN_OR_RETURN(std::string id, SpiffeIdFor(ca.trust_domain, options));
    uris.push_back(std::move(id));
  }
  FEDSHARE_RETURN_IF_ERROR(EnsureDir(options.out_dir));
  FEDSHARE_ASSIGN_OR_RETURN(PkeyPtr key, NewKey());
  FEDSHARE_ASSIGN_OR_RETURN(std::string cert_pem, internal::SignLeaf(ca, key.get(), options, uris));
  FEDSHARE_ASSIGN_OR_RETURN(std::string key_pem, internal::PrivateKeyToPem(key.get()));
  FEDSHARE_RETURN_IF_ERROR(WriteFileAtomic(Join(options.out_dir, kCaCertFile), ca.cert_pem, 0644));
  FEDSHARE_RETURN_IF_ERROR(WriteFileAtomic(Join(options.out_dir, kKeyFile), key_pem, 0600));
  return WriteFileAtomic(Join(options.out_dir, kCertFile), cert_pem, 0644);
}

}  // namespace fedshare::identity
