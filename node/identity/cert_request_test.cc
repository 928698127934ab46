// Certificate requests: what CreateCertificateRequest writes, and each rule
// SignCertificateRequest applies. Requests fedshare would never make are
// built here with OpenSSL directly, as a partner's own tools might.
#include "node/identity/cert_request.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "node/common/test_temp_dir.h"
#include "node/identity/cert_issuer.h"
#include "node/identity/tls_files.h"
#include "node/identity/x509_verify.h"

namespace fedshare::identity {
namespace {

using ::fedshare::testing::ScopedTempDir;
using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kDomain[] = "fed.example";
constexpr char kNodeId[] = "spiffe://fed.example/org/acme/node";

// A request signed by a fresh key of `key_spec` ("P-256", "P-384", "RSA:1024"),
// with subject CN `cn` (none if empty) and the given SANs (type, value).
std::string MakeRequest(const std::string& key_spec, const std::string& cn,
                        const std::vector<std::pair<int, std::string>>& sans) {
  EVP_PKEY* key = absl::StartsWith(key_spec, "RSA:")
                      ? EVP_RSA_gen(static_cast<unsigned>(std::stoi(key_spec.substr(4))))
                      : EVP_EC_gen(key_spec.c_str());
  X509_REQ* req = X509_REQ_new();
  X509_REQ_set_version(req, X509_REQ_VERSION_1);
  if (!cn.empty()) {
    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  }
  X509_REQ_set_pubkey(req, key);
  if (!sans.empty()) {
    GENERAL_NAMES* names = sk_GENERAL_NAME_new_null();
    for (const auto& [type, value] : sans) {
      GENERAL_NAME* gn = GENERAL_NAME_new();
      ASN1_IA5STRING* s = ASN1_IA5STRING_new();
      ASN1_STRING_set(s, value.data(), static_cast<int>(value.size()));
      GENERAL_NAME_set0_value(gn, type, s);
      sk_GENERAL_NAME_push(names, gn);
    }
    STACK_OF(X509_EXTENSION)* extensions = nullptr;
    X509V3_add1_i2d(&extensions, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT);
    X509_REQ_add_extensions(req, extensions);
    sk_X509_EXTENSION_pop_free(extensions, X509_EXTENSION_free);
    GENERAL_NAMES_free(names);
  }
  X509_REQ_sign(req, key, EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_REQ(bio, req);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(length));
  BIO_free(bio);
  X509_REQ_free(req);
  EVP_PKEY_free(key);
  return pem;
}

class CertRequestTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK(CreateCa(kDomain, ca_dir(), 3650)); }

  std::string ca_dir() const { return dir_.Sub("ca"); }

  RequestOptions Options(Role role, const std::string& name, const std::string& out) {
    RequestOptions o;
    o.trust_domain = kDomain;
    o.org = "acme";
    o.role = role;
    o.name = name;
    o.out_dir = dir_.Sub(out);
    return o;
  }

  ScopedTempDir dir_{"cert_request_test"};
};

TEST_F(CertRequestTest, RequestAndSignYieldAVerifiedIdentityWithTheRequestersKey) {
  RequestOptions o = Options(Role::kAnalyst, "alice", "alice");
  ASSERT_OK_AND_ASSIGN(RequestInfo made, CreateCertificateRequest(o));
  EXPECT_EQ(made.identity.spiffe_id, "spiffe://fed.example/org/acme/analyst/alice");
  EXPECT_EQ(made.key_type, "EC P-256");
  EXPECT_EQ(made.csr_path, o.out_dir + "/acme-analyst-alice.csr");
  struct stat st;
  ASSERT_EQ(stat((o.out_dir + "/key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);

  ASSERT_OK_AND_ASSIGN(std::string csr, ReadFile(made.csr_path));
  SignOptions s;
  s.out_dir = dir_.Sub("outbox");
  s.days = 30;
  ASSERT_OK_AND_ASSIGN(SignedRequest signed_request, SignCertificateRequest(ca_dir(), csr, s));
  EXPECT_EQ(signed_request.request.key_fingerprint, made.key_fingerprint);
  EXPECT_EQ(signed_request.not_after - signed_request.not_before, absl::Hours(24 * 30));
  EXPECT_FALSE(std::filesystem::exists(s.out_dir + "/key.pem"));

  ASSERT_OK_AND_ASSIGN(std::string cert, ReadFile(s.out_dir + "/cert.pem"));
  ASSERT_OK_AND_ASSIGN(std::string ca, ReadFile(s.out_dir + "/ca.pem"));
  ASSERT_OK_AND_ASSIGN(TrustBundle bundle, TrustBundle::FromPem(ca));
  ASSERT_OK_AND_ASSIGN(Identity who, VerifyPeerCertificate(cert, "", bundle, kDomain, absl::Now()));
  EXPECT_EQ(who.spiffe_id, made.identity.spiffe_id);
  // The certificate is for the requester's key: the pair is a working identity.
  ASSERT_OK_AND_ASSIGN(std::string key, ReadFile(o.out_dir + "/key.pem"));
  EXPECT_OK(CheckTlsPem(cert, key, ca));
}

TEST_F(CertRequestTest, CreateRefusesBadIdentitiesAndAnExistingKey) {
  RequestOptions person = Options(Role::kOperator, "olga", "olga");
  person.dns_names = {"olga.example"};
  EXPECT_THAT(CreateCertificateRequest(person),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("node certificates only")));
  EXPECT_THAT(CreateCertificateRequest(Options(Role::kNode, "n", "n")),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  RequestOptions bad_domain = Options(Role::kNode, "", "x");
  bad_domain.trust_domain = "Fed.Example";
  EXPECT_THAT(CreateCertificateRequest(bad_domain),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("trust domain")));
  ASSERT_OK(CreateCertificateRequest(Options(Role::kNode, "", "node")).status());
  EXPECT_THAT(CreateCertificateRequest(Options(Role::kNode, "", "node")),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("key.pem")));
}

TEST_F(CertRequestTest, AcceptsWhatARequestersOwnToolsMakeWithinTheRules) {
  ASSERT_OK_AND_ASSIGN(
      RequestInfo p384,
      CheckCertificateRequest(ca_dir(), MakeRequest("P-384", "", {{GEN_URI, kNodeId}})));
  EXPECT_EQ(p384.key_type, "EC P-384");
  ASSERT_OK_AND_ASSIGN(RequestInfo rsa,
                       CheckCertificateRequest(
                           ca_dir(), MakeRequest("RSA:2048", "acme node",
                                                 {{GEN_URI, kNodeId}, {GEN_DNS, "acme.example"}})));
  EXPECT_EQ(rsa.key_type, "RSA 2048");
  EXPECT_EQ(rsa.dns_names, std::vector<std::string>{"acme.example"});
}

TEST_F(CertRequestTest, RefusesEachBrokenRule) {
  struct Case {
    std::string label;
    std::string pem;
    absl::StatusCode code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"garbage", "hello", absl::StatusCode::kInvalidArgument, "not a certificate request"},
      {"small RSA", MakeRequest("RSA:1024", "", {{GEN_URI, kNodeId}}),
       absl::StatusCode::kInvalidArgument, "RSA of 1024 bits"},
      {"other curve", MakeRequest("secp256k1", "", {{GEN_URI, kNodeId}}),
       absl::StatusCode::kInvalidArgument, "curve secp256k1"},
      {"no SAN", MakeRequest("P-256", "acme node", {}), absl::StatusCode::kInvalidArgument,
       "no subjectAltName"},
      {"two URIs",
       MakeRequest("P-256", "", {{GEN_URI, kNodeId}, {GEN_URI, "spiffe://fed.example/org/b/node"}}),
       absl::StatusCode::kInvalidArgument, "exactly one URI SAN"},
      {"email", MakeRequest("P-256", "", {{GEN_URI, kNodeId}, {GEN_EMAIL, "a@b.example"}}),
       absl::StatusCode::kInvalidArgument, "kind email"},
      {"not SPIFFE", MakeRequest("P-256", "", {{GEN_URI, "https://acme.example/node"}}),
       absl::StatusCode::kInvalidArgument, "not a fedshare identity"},
      {"foreign domain",
       MakeRequest("P-256", "", {{GEN_URI, "spiffe://other.example/org/acme/node"}}),
       absl::StatusCode::kPermissionDenied, "this CA signs for 'fed.example' only"},
      {"person with DNS",
       MakeRequest("P-256", "",
                   {{GEN_URI, "spiffe://fed.example/org/acme/analyst/al"}, {GEN_DNS, "x.example"}}),
       absl::StatusCode::kInvalidArgument, "only a node may carry"},
      {"CN of another org", MakeRequest("P-256", "evil node", {{GEN_URI, kNodeId}}),
       absl::StatusCode::kInvalidArgument, "expected CN 'acme node'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    EXPECT_THAT(CheckCertificateRequest(ca_dir(), c.pem), StatusIs(c.code, HasSubstr(c.says)));
    SignOptions s;
    s.out_dir = dir_.Sub("out-" + c.label);
    EXPECT_THAT(SignCertificateRequest(ca_dir(), c.pem, s), StatusIs(c.code, ::testing::_));
    EXPECT_FALSE(std::filesystem::exists(s.out_dir));
  }
}

TEST_F(CertRequestTest, SignHonoursTheCaHoldersExpectationsAndDays) {
  const std::string pem = MakeRequest("P-256", "", {{GEN_URI, kNodeId}});
  RequestExpectation other_org;
  other_org.org = "bravo";
  EXPECT_THAT(CheckCertificateRequest(ca_dir(), pem, other_org),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("not 'bravo'")));
  RequestExpectation analyst;
  analyst.role = Role::kAnalyst;
  EXPECT_THAT(CheckCertificateRequest(ca_dir(), pem, analyst),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("not analyst")));
  SignOptions zero;
  zero.out_dir = dir_.Sub("zero");
  zero.days = 0;
  EXPECT_THAT(SignCertificateRequest(ca_dir(), pem, zero),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("days")));
  EXPECT_FALSE(std::filesystem::exists(zero.out_dir));
}

}  // namespace
}  // namespace fedshare::identity
