// Certificates are made with cert_issuer in a temp dir, valid from a fixed
// instant in the future (kT0), and verified at fixed instants, so the tests do
// not depend on the wall clock and would fail if verification ignored `now`.
#include "node/identity/x509_verify.h"

#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "node/common/test_temp_dir.h"
#include "node/identity/cert_issuer.h"

namespace fedshare::identity {
namespace {

using ::fedshare::testing::ScopedTempDir;
using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromCivil(absl::CivilDay(2040, 1, 1), absl::UTCTimeZone());
const absl::Time kNow = kT0 + absl::Hours(24 * 30);
constexpr char kDomain[] = "fed.example";

class X509VerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CaOptions ca;
    ca.trust_domain = kDomain;
    ca.out_dir = dir_.Sub("ca");
    ca.not_before = kT0;
    ASSERT_OK(CreateCa(ca));
    ca.out_dir = dir_.Sub("other-ca");  // same trust domain, different key
    ASSERT_OK(CreateCa(ca));
    ASSERT_OK_AND_ASSIGN(std::string pem, ReadFile(dir_.Sub("ca/ca.pem")));
    ASSERT_OK_AND_ASSIGN(bundle_, TrustBundle::FromPem(pem));
  }

  IssueOptions Node(const std::string& name) {
    IssueOptions o;
    o.org = "acme";
    o.role = Role::kNode;
    o.out_dir = dir_.Sub(name);
    o.not_before = kT0;
    return o;
  }

  // Issues with `o` from the CA in dir_/ca_name and returns the leaf PEM.
  std::string Issue(const IssueOptions& o, const std::string& ca_name = "ca") {
    absl::Status s = IssueCertificate(dir_.Sub(ca_name), o);
    EXPECT_OK(s);
    absl::StatusOr<std::string> pem = ReadFile(o.out_dir + "/cert.pem");
    EXPECT_OK(pem);
    return pem.ok() ? *pem : "";
  }

  absl::StatusOr<Identity> Verify(const std::string& leaf, absl::Time now = kNow) {
    return VerifyPeerCertificate(leaf, "", *bundle_, kDomain, now);
  }

  ScopedTempDir dir_{"x509_verify_test"};
  absl::StatusOr<TrustBundle> bundle_ = absl::UnknownError("unset");
};

TEST_F(X509VerifyTest, AcceptsNodeOfTheFederation) {
  std::string pem = Issue(Node("n"));
  ASSERT_OK_AND_ASSIGN(Identity id, VerifyPeerCertificate(pem, "", *bundle_, kDomain, kNow));
  EXPECT_EQ(id.spiffe_id, "spiffe://fed.example/org/acme/node");
  EXPECT_EQ(id.org_id, "acme");
  EXPECT_EQ(id.role, Role::kNode);
}

TEST_F(X509VerifyTest, AcceptsAnalystAndReportsWhenTheResultExpires) {
  IssueOptions o = Node("a");
  o.role = Role::kAnalyst;
  o.name = "alice";
  o.days = 10;
  std::string pem = Issue(o);
  ASSERT_OK_AND_ASSIGN(VerifiedPeer peer, VerifyPeer(pem, "", *bundle_, kDomain, kT0));
  EXPECT_EQ(peer.identity.spiffe_id, "spiffe://fed.example/org/acme/analyst/alice");
  EXPECT_EQ(peer.identity.name, "alice");
  EXPECT_EQ(peer.valid_until, kT0 + absl::Hours(24 * 10));
  ASSERT_OK_AND_ASSIGN(CertificateInfo info, InspectCertificate(pem));
  EXPECT_EQ(peer.leaf_fingerprint, info.fingerprint);
}

TEST_F(X509VerifyTest, AcceptsChainThatRepeatsTheCa) {
  std::string pem = Issue(Node("n"));
  ASSERT_OK_AND_ASSIGN(std::string ca, ReadFile(dir_.Sub("ca/ca.pem")));
  EXPECT_OK(VerifyPeerCertificate(pem, ca, *bundle_, kDomain, kNow));
}

TEST_F(X509VerifyTest, RefusesMissingCertificate) {
  EXPECT_THAT(Verify(""),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("no client certificate")));
}

TEST_F(X509VerifyTest, RefusesGarbage) {
  EXPECT_THAT(Verify("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("does not parse")));
}

TEST_F(X509VerifyTest, RefusesCertificateOfAnotherCa) {
  std::string pem = Issue(Node("n"), "other-ca");
  EXPECT_THAT(Verify(pem),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("is not a trusted CA")));
}

TEST_F(X509VerifyTest, RefusesForgedChainNamingTheTrustedCa) {
  // The other CA has the same subject as ours; presenting its certificate as
  // the chain must not make its leaf trusted.
  std::string pem = Issue(Node("n"), "other-ca");
  ASSERT_OK_AND_ASSIGN(std::string other_ca, ReadFile(dir_.Sub("other-ca/ca.pem")));
  EXPECT_THAT(VerifyPeerCertificate(pem, other_ca, *bundle_, kDomain, kNow),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("certificate refused")));
}

TEST_F(X509VerifyTest, RefusesNoUriSan) {
  IssueOptions o = Node("n");
  o.uri_sans_override = std::vector<std::string>{};
  EXPECT_THAT(Verify(Issue(o)),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("no URI SAN")));
}

TEST_F(X509VerifyTest, RefusesSeveralUriSans) {
  IssueOptions o = Node("n");
  o.uri_sans_override = std::vector<std::string>{"spiffe://fed.example/org/acme/node",
                                                 "spiffe://fed.example/org/other/node"};
  EXPECT_THAT(Verify(Issue(o)),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("has 2 URI SANs")));
}

TEST_F(X509VerifyTest, RefusesNonSpiffeUri) {
  IssueOptions o = Node("n");
  o.uri_sans_override = std::vector<std::string>{"https://acme.example/node"};
  EXPECT_THAT(Verify(Issue(o)),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("scheme must be spiffe://")));
}

TEST_F(X509VerifyTest, RefusesSpiffeIdOfAnotherShape) {
  IssueOptions o = Node("n");
  o.uri_sans_override = std::vector<std::string>{"spiffe://fed.example/workload/x"};
  EXPECT_THAT(Verify(Issue(o)),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not a fedshare SPIFFE ID")));
}

TEST_F(X509VerifyTest, RefusesForeignTrustDomain) {
  IssueOptions o = Node("n");
  o.trust_domain_override = "other.example";
  EXPECT_THAT(Verify(Issue(o)),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       HasSubstr("is in trust domain 'other.example', not this federation's "
                                 "'fed.example'")));
}

TEST_F(X509VerifyTest, RefusesCaCertificateAsLeaf) {
  IssueOptions o = Node("n");
  o.is_ca = true;
  EXPECT_THAT(Verify(Issue(o)), StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("CA=TRUE")));
}

TEST_F(X509VerifyTest, RefusesTheTrustedCaItself) {
  ASSERT_OK_AND_ASSIGN(std::string ca, ReadFile(dir_.Sub("ca/ca.pem")));
  EXPECT_THAT(Verify(ca), StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("CA=TRUE")));
}

TEST_F(X509VerifyTest, RefusesExpired) {
  IssueOptions o = Node("n");
  o.not_after = kT0 + absl::Hours(24);
  std::string pem = Issue(o);
  EXPECT_OK(Verify(pem, kT0 + absl::Hours(23)));
  EXPECT_THAT(
      Verify(pem, kT0 + absl::Hours(25)),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("expired at 2040-01-02T00:00:00Z")));
}

TEST_F(X509VerifyTest, RefusesNotYetValid) {
  IssueOptions o = Node("n");
  o.not_before = kT0 + absl::Hours(24 * 60);
  std::string pem = Issue(o);
  EXPECT_THAT(Verify(pem), StatusIs(absl::StatusCode::kUnauthenticated,
                                    HasSubstr("is not valid before 2040-03-01")));
}

TEST_F(X509VerifyTest, RefusesWhenTheCaHasExpired) {
  std::string pem = Issue(Node("n"));
  // The CA is valid for 3650 days from kT0; the leaf was clamped to it too.
  EXPECT_THAT(Verify(pem, kT0 + absl::Hours(24 * 3651)),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("expired")));
}

TEST_F(X509VerifyTest, BundleWithTwoCasAcceptsBoth) {
  ASSERT_OK_AND_ASSIGN(std::string a, ReadFile(dir_.Sub("ca/ca.pem")));
  ASSERT_OK_AND_ASSIGN(std::string b, ReadFile(dir_.Sub("other-ca/ca.pem")));
  ASSERT_OK_AND_ASSIGN(TrustBundle both, TrustBundle::FromPem(a + b));
  EXPECT_EQ(both.size(), 2u);
  EXPECT_OK(VerifyPeerCertificate(Issue(Node("n1")), "", both, kDomain, kNow));
  EXPECT_OK(VerifyPeerCertificate(Issue(Node("n2"), "other-ca"), "", both, kDomain, kNow));
}

TEST_F(X509VerifyTest, BundleRefusesEmptyOrBadPem) {
  EXPECT_THAT(TrustBundle::FromPem("", "/etc/ca.pem"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("/etc/ca.pem")));
  EXPECT_FALSE(
      TrustBundle::FromPem("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n").ok());
}

// The issuer's own contract.

TEST_F(X509VerifyTest, IssuerWritesKeysPrivateAndCopiesTheCa) {
  IssueOptions o = Node("n");
  Issue(o);
  struct stat st;
  ASSERT_EQ(stat((o.out_dir + "/key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  ASSERT_EQ(stat(dir_.Sub("ca/ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  ASSERT_OK_AND_ASSIGN(std::string ca, ReadFile(dir_.Sub("ca/ca.pem")));
  ASSERT_OK_AND_ASSIGN(std::string copy, ReadFile(o.out_dir + "/ca.pem"));
  EXPECT_EQ(ca, copy);
}

TEST_F(X509VerifyTest, IssuerMakesNodeSansAndRandomSerials) {
  std::string a = Issue(Node("a"));
  std::string b = Issue(Node("b"));
  ASSERT_OK_AND_ASSIGN(CertificateInfo ia, InspectCertificate(a));
  ASSERT_OK_AND_ASSIGN(CertificateInfo ib, InspectCertificate(b));
  EXPECT_THAT(ia.uri_sans, ::testing::ElementsAre("spiffe://fed.example/org/acme/node"));
  EXPECT_FALSE(ia.is_ca);
  EXPECT_EQ(ia.serial_hex.size(), 32u);  // 128 bits
  EXPECT_NE(ia.serial_hex, ib.serial_hex);
  EXPECT_EQ(ia.not_before, kT0);
  EXPECT_EQ(ia.not_after, kT0 + absl::Hours(24 * 365));
}

TEST_F(X509VerifyTest, CaRecordsItsTrustDomain) {
  ASSERT_OK_AND_ASSIGN(std::string td, ReadCaTrustDomain(dir_.Sub("ca")));
  EXPECT_EQ(td, kDomain);
  // Without the trust-domain file, the CA certificate's URI SAN tells it.
  std::filesystem::remove(dir_.Sub("ca/trust-domain"));
  ASSERT_OK_AND_ASSIGN(td, ReadCaTrustDomain(dir_.Sub("ca")));
  EXPECT_EQ(td, kDomain);
  ASSERT_OK_AND_ASSIGN(std::string ca, ReadFile(dir_.Sub("ca/ca.pem")));
  ASSERT_OK_AND_ASSIGN(CertificateInfo info, InspectCertificate(ca));
  EXPECT_TRUE(info.is_ca);
}

TEST_F(X509VerifyTest, CaRefusesToOverwriteAnExistingCa) {
  EXPECT_THAT(CreateCa(kDomain, dir_.Sub("ca"), 10),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("ca.key exists")));
}

TEST_F(X509VerifyTest, IssuerRefusesBadRequests) {
  IssueOptions o = Node("n");
  o.role = Role::kOperator;
  EXPECT_THAT(IssueCertificate(dir_.Sub("ca"), o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs a name")));
  o = Node("n");
  o.org = "Acme";
  EXPECT_THAT(IssueCertificate(dir_.Sub("ca"), o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("org 'Acme'")));
  o = Node("n");
  o.ip_addresses = {"not-an-ip"};
  EXPECT_THAT(IssueCertificate(dir_.Sub("ca"), o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad IP address")));
  EXPECT_THAT(IssueCertificate(dir_.Sub("nowhere"), Node("n")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nowhere")));
  EXPECT_THAT(CreateCa("Bad Domain", dir_.Sub("x"), 10),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("trust domain")));
}

}  // namespace
}  // namespace fedshare::identity
