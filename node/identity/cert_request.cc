#include "node/identity/cert_request.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "node/common/files.h"
#include "node/common/status_macros.h"
#include "node/common/utf8.h"
#include "node/identity/cert_issuer.h"
#include "node/identity/issuer_internal.h"
#include "node/identity/openssl_util.h"

namespace fedshare::identity {
namespace {

using internal::OpenSslError;

struct ReqFree {
  void operator()(X509_REQ* p) const { X509_REQ_free(p); }
};
using ReqPtr = std::unique_ptr<X509_REQ, ReqFree>;

struct ExtensionsFree {
  void operator()(STACK_OF(X509_EXTENSION) * p) const {
    sk_X509_EXTENSION_pop_free(p, X509_EXTENSION_free);
  }
};
using ExtensionsPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), ExtensionsFree>;

constexpr char kAcceptedKeys[] =
    "accepted: EC P-256 (what fedshare certs request makes), EC P-384, RSA of 2048 to 8192 bits";

std::string Shown(absl::string_view text) { return TruncateUtf8(text, 80); }

absl::StatusOr<std::string> KeyType(EVP_PKEY* key) {
  const int type = EVP_PKEY_get_base_id(key);
  if (type == EVP_PKEY_EC) {
    char group[80] = {0};
    size_t length = 0;
    if (EVP_PKEY_get_group_name(key, group, sizeof(group), &length) != 1) {
      ERR_clear_error();
      return absl::InvalidArgumentError(
          absl::StrCat("the request's EC key names no known curve; ", kAcceptedKeys));
    }
    const std::string curve(group, length);
    if (curve == "prime256v1" || curve == "P-256") return std::string("EC P-256");
    if (curve == "secp384r1" || curve == "P-384") return std::string("EC P-384");
    return absl::InvalidArgumentError(
        absl::StrCat("the request's key is on curve ", curve, "; ", kAcceptedKeys));
  }
  if (type == EVP_PKEY_RSA) {
    const int bits = EVP_PKEY_get_bits(key);
    if (bits >= 2048 && bits <= 8192) return absl::StrCat("RSA ", bits);
    return absl::InvalidArgumentError(
        absl::StrCat("the request's key is RSA of ", bits, " bits; ", kAcceptedKeys));
  }
  const char* name = OBJ_nid2sn(type);
  return absl::InvalidArgumentError(absl::StrCat(
      "the request's key is of type ", name == nullptr ? "unknown" : name, "; ", kAcceptedKeys));
}

// SHA-256 over the DER SubjectPublicKeyInfo, in groups of four hex digits so
// two people can compare it aloud.
std::string KeyFingerprint(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(key, &der);
  if (length <= 0) return "";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_length = 0;
  const int ok =
      EVP_Digest(der, static_cast<size_t>(length), md, &md_length, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  if (ok != 1) return "";
  const std::string hex =
      absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(md), md_length));
  std::vector<std::string> groups;
  for (size_t i = 0; i < hex.size(); i += 4) groups.push_back(hex.substr(i, 4));
  return absl::StrJoin(groups, " ");
}

absl::StatusOr<std::string> IpText(const ASN1_OCTET_STRING* ip) {
  const unsigned char* bytes = ASN1_STRING_get0_data(ip);
  const int length = ASN1_STRING_length(ip);
  char text[INET6_ADDRSTRLEN] = {0};
  const int family = length == 4 ? AF_INET : length == 16 ? AF_INET6 : -1;
  if (family < 0 || inet_ntop(family, bytes, text, sizeof(text)) == nullptr) {
    return absl::InvalidArgumentError(
        "the request holds an IP address SAN of neither 4 nor 16 bytes");
  }
  return std::string(text);
}

absl::string_view SanKindName(int type) {
  switch (type) {
    case GEN_OTHERNAME:
      return "otherName";
    case GEN_EMAIL:
      return "email";
    case GEN_X400:
      return "x400Address";
    case GEN_DIRNAME:
      return "directoryName";
    case GEN_EDIPARTY:
      return "ediPartyName";
    case GEN_RID:
      return "registeredID";
    default:
      return "unknown";
  }
}

std::string Ia5Text(const ASN1_IA5STRING* s) {
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
}

absl::StatusOr<ReqPtr> ParseRequest(absl::string_view pem) {
  if (pem.size() > kMaxRequestBytes) {
    return absl::InvalidArgumentError(absl::StrCat("the request is ", pem.size(),
                                                   " bytes; a certificate request is at most ",
                                                   kMaxRequestBytes));
  }
  internal::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return absl::ResourceExhaustedError("BIO_new_mem_buf failed");
  ReqPtr req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (req == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a certificate request in PEM form (-----BEGIN CERTIFICATE REQUEST-----): ",
        OpenSslError()));
  }
  return req;
}

// The SANs of `req`, sorted by kind. INVALID_ARGUMENT for any other kind.
absl::Status ReadSubjectAltNames(X509_REQ* req, std::vector<std::string>* uris,
                                 std::vector<std::string>* dns_names,
                                 std::vector<std::string>* ips) {
  ExtensionsPtr extensions(X509_REQ_get_extensions(req));
  if (extensions == nullptr) ERR_clear_error();
  int critical = -1;
  internal::GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
      X509V3_get_d2i(extensions.get(), NID_subject_alt_name, &critical, nullptr)));
  if (critical == -2) {
    return absl::InvalidArgumentError("the request holds several subjectAltName extensions");
  }
  if (names == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "the request has no subjectAltName: it must carry its SPIFFE ID as a URI SAN (make it "
        "with fedshare certs request)");
  }
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    switch (name->type) {
      case GEN_URI:
        uris->push_back(Ia5Text(name->d.uniformResourceIdentifier));
        break;
      case GEN_DNS: {
        std::string dns = Ia5Text(name->d.dNSName);
        if (!internal::IsDnsName(dns)) {
          return absl::InvalidArgumentError(
              absl::StrCat("the request holds a bad DNS name '", Shown(dns), "'"));
        }
        dns_names->push_back(std::move(dns));
        break;
      }
      case GEN_IPADD: {
        FEDSHARE_ASSIGN_OR_RETURN(std::string ip, IpText(name->d.iPAddress));
        ips->push_back(std::move(ip));
        break;
      }
      default:
        return absl::InvalidArgumentError(absl::StrCat(
            "the request holds a subjectAltName entry of kind ", SanKindName(name->type),
            "; only the SPIFFE ID (URI) and, for a node, DNS names and IP addresses are signed"));
    }
  }
  return absl::OkStatus();
}

// The subject CN of `req`, or nullopt if it has none.
absl::StatusOr<std::optional<std::string>> CommonName(X509_REQ* req) {
  X509_NAME* subject = X509_REQ_get_subject_name(req);
  const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index < 0) return std::optional<std::string>();
  unsigned char* utf8 = nullptr;
  const int length =
      ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index)));
  if (length < 0) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the request's subject CN is not readable text");
  }
  std::string cn(reinterpret_cast<const char*>(utf8), static_cast<size_t>(length));
  OPENSSL_free(utf8);
  return std::optional<std::string>(std::move(cn));
}

absl::StatusOr<RequestInfo> Inspect(X509_REQ* req, absl::string_view ca_trust_domain,
                                    const RequestExpectation& expect) {
  EVP_PKEY* key = X509_REQ_get0_pubkey(req);
  if (key == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the request carries no readable public key");
  }
  if (X509_REQ_verify(req, key) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "the request's signature does not verify with its own key: it was changed after it was "
        "made, or is damaged. Ask the requester for a fresh one.");
  }
  RequestInfo info;
  FEDSHARE_ASSIGN_OR_RETURN(info.key_type, KeyType(key));
  info.key_fingerprint = KeyFingerprint(key);
  std::vector<std::string> uris;
  FEDSHARE_RETURN_IF_ERROR(ReadSubjectAltNames(req, &uris, &info.dns_names, &info.ip_addresses));
  if (uris.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request must carry exactly one URI SAN, its SPIFFE ID; it has ", uris.size()));
  }
  absl::StatusOr<Identity> id = ParseSpiffeId(uris[0]);
  if (!id.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request's SPIFFE ID '", Shown(uris[0]),
                     "' is not a fedshare identity: ", id.status().message()));
  }
  info.identity = *std::move(id);
  const Identity& who = info.identity;
  if (who.trust_domain != ca_trust_domain) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the request is for trust domain '", who.trust_domain, "', but this CA signs for '",
        ca_trust_domain, "' only (the requester runs fedshare certs request --trust-domain ",
        ca_trust_domain, ")"));
  }
  if (who.role != Role::kNode && (!info.dns_names.empty() || !info.ip_addresses.empty())) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request is for a person (", RoleName(who.role),
                     ") but asks for DNS names or IP addresses, which only a node may carry"));
  }
  FEDSHARE_ASSIGN_OR_RETURN(std::optional<std::string> cn, CommonName(req));
  const std::string expected_cn = internal::CommonNameFor(who.org_id, who.role, who.name);
  if (cn.has_value() && *cn != expected_cn) {
    return absl::InvalidArgumentError(absl::StrCat("the request's subject CN '", Shown(*cn),
                                                   "' does not match its SPIFFE ID ", who.spiffe_id,
                                                   " (expected CN '", expected_cn, "' or none)"));
  }
  if (!expect.org.empty() && who.org_id != expect.org) {
    return absl::PermissionDeniedError(absl::StrCat("the request is for org '", who.org_id,
                                                    "', not '", expect.org, "' as expected"));
  }
  if (expect.role.has_value() && who.role != *expect.role) {
    return absl::PermissionDeniedError(absl::StrCat("the request is for role ", RoleName(who.role),
                                                    ", not ", RoleName(*expect.role),
                                                    " as expected"));
  }
  return info;
}

absl::StatusOr<std::string> RequestToPem(X509_REQ* req) {
  internal::BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509_REQ(bio.get(), req) != 1) {
    return absl::InternalError(absl::StrCat("cannot encode the request: ", OpenSslError()));
  }
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(length));
}

}  // namespace

absl::StatusOr<RequestInfo> CreateCertificateRequest(const RequestOptions& options) {
  if (!IsValidTrustDomain(options.trust_domain)) {
    return absl::InvalidArgumentError(
        absl::StrCat("trust domain '", Shown(options.trust_domain),
                     "' must be 1-255 of lowercase letters, digits, '.', '-', '_' (ask the "
                     "federation's CA holder for it)"));
  }
  FEDSHARE_ASSIGN_OR_RETURN(std::string spiffe_id, MakeSpiffeId(options.trust_domain, options.org,
                                                                options.role, options.name));
  if (options.role != Role::kNode &&
      (!options.dns_names.empty() || !options.ip_addresses.empty())) {
    return absl::InvalidArgumentError("DNS names and IP addresses are for node certificates only");
  }
  FEDSHARE_ASSIGN_OR_RETURN(
      internal::GeneralNamesPtr names,
      internal::MakeSubjectAltNames({spiffe_id}, options.dns_names, options.ip_addresses));
  FEDSHARE_RETURN_IF_ERROR(internal::EnsureDir(options.out_dir));
  const std::string key_path = internal::Join(options.out_dir, kKeyFile);
  if (std::filesystem::exists(key_path)) {
    return absl::AlreadyExistsError(
        absl::StrCat(key_path,
                     " exists; refusing to replace a key a node or person may be using. Make the "
                     "request in a new directory."));
  }

  FEDSHARE_ASSIGN_OR_RETURN(internal::PkeyPtr key, internal::NewKey());
  ReqPtr req(X509_REQ_new());
  if (req == nullptr) return absl::ResourceExhaustedError("X509_REQ_new failed");
  X509_REQ_set_version(req.get(), X509_REQ_VERSION_1);
  FEDSHARE_RETURN_IF_ERROR(
      internal::SetCommonName(X509_REQ_get_subject_name(req.get()),
                              internal::CommonNameFor(options.org, options.role, options.name)));
  if (X509_REQ_set_pubkey(req.get(), key.get()) != 1) {
    return absl::InternalError(absl::StrCat("cannot set the request's key: ", OpenSslError()));
  }
  STACK_OF(X509_EXTENSION)* raw_extensions = nullptr;
  if (X509V3_add1_i2d(&raw_extensions, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) !=
      1) {
    return absl::InternalError(absl::StrCat("cannot encode subjectAltName: ", OpenSslError()));
  }
  ExtensionsPtr extensions(raw_extensions);
  if (X509_REQ_add_extensions(req.get(), extensions.get()) != 1) {
    return absl::InternalError(absl::StrCat("cannot add extensions: ", OpenSslError()));
  }
  if (X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) {
    return absl::InternalError(absl::StrCat("cannot sign the request: ", OpenSslError()));
  }

  FEDSHARE_ASSIGN_OR_RETURN(std::string key_pem, internal::PrivateKeyToPem(key.get()));
  FEDSHARE_ASSIGN_OR_RETURN(std::string csr_pem, RequestToPem(req.get()));
  FEDSHARE_ASSIGN_OR_RETURN(RequestInfo info, Inspect(req.get(), options.trust_domain, {}));
  std::string file = absl::StrCat(options.org, "-", RoleName(options.role));
  if (!options.name.empty()) absl::StrAppend(&file, "-", options.name);
  info.csr_path = internal::Join(options.out_dir, file + ".csr");
  FEDSHARE_RETURN_IF_ERROR(WriteFileAtomic(key_path, key_pem, 0600));
  FEDSHARE_RETURN_IF_ERROR(WriteFileAtomic(info.csr_path, csr_pem, 0644));
  return info;
}

absl::StatusOr<RequestInfo> CheckCertificateRequest(const std::string& ca_dir,
                                                    absl::string_view csr_pem,
                                                    const RequestExpectation& expect) {
  FEDSHARE_ASSIGN_OR_RETURN(std::string trust_domain, ReadCaTrustDomain(ca_dir));
  FEDSHARE_ASSIGN_OR_RETURN(ReqPtr req, ParseRequest(csr_pem));
  return Inspect(req.get(), trust_domain, expect);
}

absl::StatusOr<SignedRequest> SignCertificateRequest(const std::string& ca_dir,
                                                     absl::string_view csr_pem,
                                                     const SignOptions& options) {
  FEDSHARE_ASSIGN_OR_RETURN(internal::LoadedCa ca, internal::LoadCa(ca_dir));
  FEDSHARE_ASSIGN_OR_RETURN(ReqPtr req, ParseRequest(csr_pem));
  SignedRequest signed_request;
  FEDSHARE_ASSIGN_OR_RETURN(signed_request.request,
                            Inspect(req.get(), ca.trust_domain, options.expect));
  const RequestInfo& info = signed_request.request;
  IssueOptions issue;
  issue.org = info.identity.org_id;
  issue.role = info.identity.role;
  issue.name = info.identity.name;
  issue.days = options.days;
  issue.dns_names = info.dns_names;
  issue.ip_addresses = info.ip_addresses;
  FEDSHARE_ASSIGN_OR_RETURN(
      std::string cert_pem,
      internal::SignLeaf(ca, X509_REQ_get0_pubkey(req.get()), issue, {info.identity.spiffe_id}));
  FEDSHARE_ASSIGN_OR_RETURN(std::vector<internal::X509Ptr> issued,
                            internal::ParseCertificates(cert_pem));
  signed_request.not_before = internal::Asn1TimeToTime(X509_get0_notBefore(issued[0].get()));
  signed_request.not_after = internal::Asn1TimeToTime(X509_get0_notAfter(issued[0].get()));
  FEDSHARE_RETURN_IF_ERROR(internal::EnsureDir(options.out_dir));
  signed_request.ca_path = internal::Join(options.out_dir, kCaCertFile);
  signed_request.cert_path = internal::Join(options.out_dir, kCertFile);
  FEDSHARE_RETURN_IF_ERROR(WriteFileAtomic(signed_request.ca_path, ca.cert_pem, 0644));
  FEDSHARE_RETURN_IF_ERROR(WriteFileAtomic(signed_request.cert_path, cert_pem, 0644));
  return signed_request;
}

}  // namespace fedshare::identity
