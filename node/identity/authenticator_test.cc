// The Authenticator without a network: PEM in, identity out, with a FakeClock
// deciding when the CA file is looked at again.
#include "node/identity/authenticator.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/clock.h"
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
constexpr char kDomain[] = "fed.example";

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* ca : {"ca", "ca2"}) {
      CaOptions o;
      o.trust_domain = kDomain;
      o.out_dir = dir_.Sub(ca);
      o.not_before = kT0;
      ASSERT_OK(CreateCa(o));
    }
    ASSERT_OK_AND_ASSIGN(ca1_, ReadFile(dir_.Sub("ca/ca.pem")));
    ASSERT_OK_AND_ASSIGN(ca2_, ReadFile(dir_.Sub("ca2/ca.pem")));
    ASSERT_OK(WriteFileAtomic(Bundle(), ca1_));
  }

  std::string Bundle() const { return dir_.Sub("bundle.pem"); }

  std::string Issue(const std::string& ca, const std::string& org, Role role = Role::kNode,
                    const std::string& name = "", int days = 365) {
    IssueOptions o;
    o.org = org;
    o.role = role;
    o.name = name;
    o.days = days;
    o.out_dir = dir_.Sub(org + name);
    o.not_before = kT0;
    EXPECT_OK(IssueCertificate(dir_.Sub(ca), o));
    absl::StatusOr<std::string> pem = ReadFile(o.out_dir + "/cert.pem");
    EXPECT_OK(pem);
    return pem.value_or("");
  }

  ScopedTempDir dir_{"authenticator_test"};
  std::string ca1_, ca2_;
  FakeClock clock_{kT0 + absl::Hours(1)};
};

TEST_F(AuthenticatorTest, CreateRefusesBadInputs) {
  EXPECT_THAT(Authenticator::Create(dir_.Sub("none.pem"), kDomain, absl::Seconds(1), &clock_),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("none.pem")));
  EXPECT_THAT(Authenticator::Create(Bundle(), "", absl::Seconds(1), &clock_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("trust domain")));
  ASSERT_OK(WriteFileAtomic(dir_.Sub("empty.pem"), ""));
  EXPECT_THAT(Authenticator::Create(dir_.Sub("empty.pem"), kDomain, absl::Seconds(1), &clock_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no PEM certificate")));
}

TEST_F(AuthenticatorTest, AuthenticatesAndRefuses) {
  ASSERT_OK_AND_ASSIGN(auto auth,
                       Authenticator::Create(Bundle(), kDomain, absl::Seconds(10), &clock_));
  ASSERT_OK_AND_ASSIGN(Identity id, auth->AuthenticatePem(Issue("ca", "acme"), ""));
  EXPECT_EQ(id.spiffe_id, "spiffe://fed.example/org/acme/node");
  EXPECT_THAT(auth->AuthenticatePem("", ""),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("no client certificate")));
  EXPECT_THAT(auth->AuthenticatePem(Issue("ca2", "beta"), ""),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not a trusted CA")));
}

TEST_F(AuthenticatorTest, CachedResultEndsWhenTheCertificateExpires) {
  ASSERT_OK_AND_ASSIGN(auto auth,
                       Authenticator::Create(Bundle(), kDomain, absl::Seconds(10), &clock_));
  std::string pem = Issue("ca", "acme", Role::kNode, "", /*days=*/1);
  EXPECT_OK(auth->AuthenticatePem(pem, ""));
  EXPECT_OK(auth->AuthenticatePem(pem, ""));  // from the cache
  clock_.Advance(absl::Hours(24));
  EXPECT_THAT(auth->AuthenticatePem(pem, ""),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("expired")));
}

TEST_F(AuthenticatorTest, ReloadsChangedBundleAfterTheInterval) {
  ASSERT_OK_AND_ASSIGN(auto auth,
                       Authenticator::Create(Bundle(), kDomain, absl::Seconds(10), &clock_));
  std::string beta = Issue("ca2", "beta");
  std::string acme = Issue("ca", "acme");
  EXPECT_FALSE(auth->AuthenticatePem(beta, "").ok());
  EXPECT_OK(auth->AuthenticatePem(acme, ""));  // cached under generation 1

  ASSERT_OK(WriteFileAtomic(Bundle(), ca2_));  // only the second CA now
  clock_.Advance(absl::Seconds(5));
  EXPECT_FALSE(auth->AuthenticatePem(beta, "").ok()) << "reloaded before the interval";
  EXPECT_EQ(auth->bundle_generation(), 1u);

  clock_.Advance(absl::Seconds(5));
  EXPECT_OK(auth->AuthenticatePem(beta, ""));
  EXPECT_EQ(auth->bundle_generation(), 2u);
  // The cached acceptance of the first CA's node went with the old bundle.
  EXPECT_THAT(auth->AuthenticatePem(acme, ""),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not a trusted CA")));
}

TEST_F(AuthenticatorTest, UnreadableBundleKeepsThePreviousOne) {
  ASSERT_OK_AND_ASSIGN(auto auth,
                       Authenticator::Create(Bundle(), kDomain, absl::Seconds(1), &clock_));
  std::string acme = Issue("ca", "acme");
  ASSERT_OK(WriteFileAtomic(Bundle(), "not a certificate"));
  clock_.Advance(absl::Seconds(2));
  EXPECT_OK(auth->AuthenticatePem(acme, ""));
  EXPECT_EQ(auth->bundle_generation(), 1u);
  EXPECT_THAT(auth->last_reload_status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bundle.pem")));

  ASSERT_OK(WriteFileAtomic(Bundle(), ca1_ + ca2_));  // fixed: tried again
  clock_.Advance(absl::Seconds(2));
  EXPECT_OK(auth->AuthenticatePem(Issue("ca2", "beta"), ""));
  EXPECT_OK(auth->last_reload_status());
}

TEST(RequireRoleTest, AllowsListedRolesOfTheOwnOrg) {
  Identity op{"spiffe://d/org/acme/operator/bob", "d", "acme", Role::kOperator, "bob"};
  EXPECT_OK(RequireRole(op, {Role::kOperator, Role::kAnalyst}, "acme", "AdminService.Status"));
  EXPECT_OK(RequireRole(op, {Role::kOperator}, "", "AdminService.Status"));
}

TEST(RequireRoleTest, RefusesOtherRoleOrOrgSayingWhy) {
  Identity node{"spiffe://d/org/beta/node", "d", "beta", Role::kNode, ""};
  EXPECT_THAT(RequireRole(node, {Role::kOperator, Role::kAnalyst}, "acme", "AdminService.Status"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("AdminService.Status needs a caller that is operator or analyst "
                                 "of org acme; caller is node of org beta")));
  Identity analyst{"spiffe://d/org/beta/analyst/al", "d", "beta", Role::kAnalyst, "al"};
  EXPECT_THAT(
      RequireRole(analyst, {Role::kAnalyst}, "acme", "FederationService.FederatedAggregate"),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("analyst al of org beta")));
  EXPECT_THAT(
      RequireRole(analyst, {Role::kNode}, "", "PeerService.Aggregate"),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("needs a caller that is node;")));
}

}  // namespace
}  // namespace fedshare::identity
