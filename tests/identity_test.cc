// Issue 2: a real node on loopback port 0 with certificates made in the test
// refuses every bad client identity and serves the right one, per RPC role,
// and picks up certificates replaced on disk without a restart.
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "node/identity/x509_verify.h"
#include "node/server/config.h"
#include "node/server/node.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;
using ::testing::AnyOf;
using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "fedshare.test";

// The options of the org's real operator, for tests to spoil one way each.
identity::IssueOptions Olga() {
  identity::IssueOptions o;
  o.org = "partner-a";
  o.role = Role::kOperator;
  o.name = "olga";
  return o;
}

class IdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_identity_ = pki_.Issue("partner-a", Role::kNode);
    v1::NodeConfig config =
        BaseNodeConfig("partner-a", kTrustDomain, tmp_.Sub("data"), node_identity_);
    *config.add_datasets() = ProgramOutcomesSchema();
    *config.add_agreements() = OpenAgreement("foundation-eval", "foundation");
    ASSERT_OK(server::ValidateNodeConfig(config));
    auto node = server::Node::Create(config, server::NodeOptions());
    ASSERT_OK(node.status());
    node_ = std::move(node).value();
  }

  absl::Status StatusAs(const identity::ClientTlsFiles& files) {
    identity::ServerExpectation expect;
    expect.trust_domain = kTrustDomain;
    auto client = client::NodeClient::Connect(node_->local_address(), files, expect);
    if (!client.ok()) return client.status();
    (*client)->set_timeout(absl::Seconds(20));
    return (*client)->Status().status();
  }

  absl::Status StatusAs(const std::string& identity_dir) {
    return StatusAs(Pki::Files(identity_dir));
  }

  TempDir tmp_{"identity"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  std::string node_identity_;
  std::unique_ptr<server::Node> node_;
};

TEST_F(IdentityTest, OperatorOfTheOrgIsServed) {
  std::string op = pki_.Issue("partner-a", Role::kOperator, "olga");
  auto client = Connect(node_->local_address(), op, kTrustDomain, "partner-a");
  ASSERT_NE(client, nullptr);
  ASSERT_OK_AND_ASSIGN(v1::StatusResponse status, client->Status());
  EXPECT_EQ(status.org_id(), "partner-a");
  EXPECT_EQ(status.caller(), "spiffe://fedshare.test/org/partner-a/operator/olga");
  EXPECT_EQ(status.local_address(), node_->local_address());
}

TEST_F(IdentityTest, ClientWithoutCertificateIsUnauthenticated) {
  identity::ClientTlsFiles files;
  files.ca_file = node_identity_ + "/ca.pem";
  EXPECT_THAT(StatusAs(files), StatusIs(absl::StatusCode::kUnauthenticated, ::testing::_));
}

TEST_F(IdentityTest, CertificateFromAnotherCaIsUnauthenticated) {
  Pki other(tmp_.Sub("other-pki"), kTrustDomain);
  std::string op = other.Issue("partner-a", Role::kOperator, "mallory");
  identity::ClientTlsFiles files = Pki::Files(op);
  files.ca_file = node_identity_ + "/ca.pem";  // it trusts the real server
  EXPECT_THAT(StatusAs(files), StatusIs(absl::StatusCode::kUnauthenticated, ::testing::_));
}

TEST_F(IdentityTest, ForeignTrustDomainIsUnauthenticated) {
  identity::IssueOptions o = Olga();
  o.trust_domain_override = "elsewhere.test";
  EXPECT_THAT(StatusAs(pki_.IssueWith("foreign", o)),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("trust domain")));
}

TEST_F(IdentityTest, TwoUriSansAreUnauthenticated) {
  identity::IssueOptions o = Olga();
  o.uri_sans_override =
      std::vector<std::string>{"spiffe://fedshare.test/org/partner-a/operator/olga",
                               "spiffe://fedshare.test/org/partner-a/node"};
  EXPECT_THAT(StatusAs(pki_.IssueWith("two-uris", o)),
              StatusIs(absl::StatusCode::kUnauthenticated, ::testing::_));
}

TEST_F(IdentityTest, NoUriSanIsUnauthenticated) {
  identity::IssueOptions o = Olga();
  o.uri_sans_override = std::vector<std::string>{};
  EXPECT_THAT(StatusAs(pki_.IssueWith("no-uri", o)),
              StatusIs(absl::StatusCode::kUnauthenticated, ::testing::_));
}

TEST_F(IdentityTest, ExpiredCertificateIsUnauthenticated) {
  identity::IssueOptions o = Olga();
  o.not_before = absl::Now() - absl::Hours(48);
  o.not_after = absl::Now() - absl::Hours(24);
  EXPECT_THAT(StatusAs(pki_.IssueWith("expired", o)),
              StatusIs(absl::StatusCode::kUnauthenticated, ::testing::_));
}

TEST_F(IdentityTest, CaCertificateAsClientIsUnauthenticated) {
  identity::IssueOptions o = Olga();
  o.is_ca = true;
  EXPECT_THAT(StatusAs(pki_.IssueWith("ca-true", o)),
              StatusIs(absl::StatusCode::kUnauthenticated, ::testing::_));
}

TEST_F(IdentityTest, WrongRoleIsPermissionDenied) {
  // An analyst may read status but not load data.
  std::string analyst = pki_.Issue("partner-a", Role::kAnalyst, "ann");
  auto as_analyst = Connect(node_->local_address(), analyst, kTrustDomain);
  ASSERT_NE(as_analyst, nullptr);
  EXPECT_OK(as_analyst->Status().status());
  EXPECT_THAT(as_analyst->Ingest("program_outcomes", v1::CSV, false, "participant_id\n"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("operator")));

  // Another org's node may not use the admin service.
  std::string foundation = pki_.Issue("foundation", Role::kNode);
  auto as_peer_node = Connect(node_->local_address(), foundation, kTrustDomain);
  ASSERT_NE(as_peer_node, nullptr);
  EXPECT_THAT(as_peer_node->Status(),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("operator or analyst")));

  // Another org's operator is not this org's operator.
  std::string other_op = pki_.Issue("partner-b", Role::kOperator, "bob");
  EXPECT_THAT(StatusAs(other_op),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("partner-a")));

  // People do not call the peer listener; nodes do.
  std::string op = pki_.Issue("partner-a", Role::kOperator, "olga");
  auto op_on_peer = Connect(node_->peer_address(), op, kTrustDomain);
  ASSERT_NE(op_on_peer, nullptr);
  EXPECT_THAT(op_on_peer->Describe(),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("node")));
}

TEST_F(IdentityTest, PeerNodeDescribesWhatItMayAsk) {
  std::string foundation = pki_.Issue("foundation", Role::kNode);
  auto client = Connect(node_->peer_address(), foundation, kTrustDomain, "partner-a");
  ASSERT_NE(client, nullptr);
  ASSERT_OK_AND_ASSIGN(v1::DescribeResponse d, client->Describe());
  EXPECT_EQ(d.org_id(), "partner-a");
  ASSERT_EQ(d.datasets_size(), 1);
  EXPECT_EQ(d.datasets(0).schema().name(), "program_outcomes");
  ASSERT_EQ(d.datasets(0).agreements_size(), 1);
  EXPECT_EQ(d.datasets(0).agreements(0).id(), "foundation-eval");
  for (const v1::FieldSchema& f : d.datasets(0).schema().fields()) {
    EXPECT_NE(f.role(), v1::FieldSchema::PRIVATE) << f.name();
    EXPECT_NE(f.role(), v1::FieldSchema::SUBJECT) << f.name();
  }

  // A node without any agreement sees no dataset.
  std::string stranger = pki_.Issue("stranger", Role::kNode);
  auto other = Connect(node_->peer_address(), stranger, kTrustDomain);
  ASSERT_NE(other, nullptr);
  ASSERT_OK_AND_ASSIGN(v1::DescribeResponse none, other->Describe());
  EXPECT_EQ(none.datasets_size(), 0);
}

TEST_F(IdentityTest, ClientRefusesAServerOfTheWrongOrg) {
  std::string foundation = pki_.Issue("foundation", Role::kNode);
  auto client = Connect(node_->peer_address(), foundation, kTrustDomain, "partner-b");
  ASSERT_NE(client, nullptr);
  EXPECT_THAT(client->Describe(), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
}

TEST_F(IdentityTest, HealthAndReflectionAreServed) {
  std::string op = pki_.Issue("partner-a", Role::kOperator, "olga");
  identity::ServerExpectation expect;
  expect.trust_domain = kTrustDomain;
  ASSERT_OK_AND_ASSIGN(auto channel,
                       identity::MakeChannel(node_->local_address(), Pki::Files(op), expect));
  RawReply health = CallRaw(channel, "/grpc.health.v1.Health/Check");
  ASSERT_TRUE(health.status.ok()) << health.status.error_message();
  EXPECT_EQ(health.body, std::string("\x08\x01", 2));  // status: SERVING
}

TEST_F(IdentityTest, ReplacedServerCertificateIsUsedWithoutRestart) {
  std::string op = pki_.Issue("partner-a", Role::kOperator, "olga");
  auto first = Connect(node_->local_address(), op, kTrustDomain);
  ASSERT_NE(first, nullptr);
  ASSERT_OK(first->Status().status());
  ASSERT_OK_AND_ASSIGN(identity::CertificateInfo before,
                       identity::InspectCertificate(first->last_server_certificate()));

  // Rotate: a new certificate and key for the same identity, in place.
  pki_.Issue("partner-a", Role::kNode);
  ASSERT_OK_AND_ASSIGN(std::string pem, ReadFile(node_identity_ + "/cert.pem"));
  ASSERT_OK_AND_ASSIGN(identity::CertificateInfo rotated, identity::InspectCertificate(pem));
  ASSERT_NE(rotated.fingerprint, before.fingerprint);

  // New connections see the new certificate once the node has reloaded it.
  std::string seen;
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    auto client = Connect(node_->local_address(), op, kTrustDomain);
    ASSERT_NE(client, nullptr);
    ASSERT_OK(client->Status().status());
    ASSERT_OK_AND_ASSIGN(identity::CertificateInfo info,
                         identity::InspectCertificate(client->last_server_certificate()));
    seen = info.fingerprint;
    if (seen == rotated.fingerprint) break;
    absl::SleepFor(absl::Milliseconds(200));  // poll interval while waiting for the reload
  }
  EXPECT_EQ(seen, rotated.fingerprint);
}

TEST_F(IdentityTest, ReplacedTrustBundleIsUsedWithoutRestart) {
  Pki second(tmp_.Sub("second-pki"), kTrustDomain);
  std::string op2 = second.Issue("partner-a", Role::kOperator, "nina");
  identity::ClientTlsFiles files = Pki::Files(op2);
  files.ca_file = node_identity_ + "/ca.pem";
  ASSERT_THAT(StatusAs(files), StatusIs(absl::StatusCode::kUnauthenticated, ::testing::_));

  // The node now trusts both CAs.
  ASSERT_OK_AND_ASSIGN(std::string ca1, ReadFile(node_identity_ + "/ca.pem"));
  ASSERT_OK_AND_ASSIGN(std::string ca2, ReadFile(second.ca_dir() + "/ca.pem"));
  std::string client_ca = tmp_.Sub("client-ca.pem");
  ASSERT_OK(WriteFileAtomic(client_ca, ca1));
  files.ca_file = client_ca;
  ASSERT_OK(WriteFileAtomic(node_identity_ + "/ca.pem", ca1 + ca2));

  absl::Status last;
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    last = StatusAs(files);
    if (last.ok()) break;
    absl::SleepFor(absl::Milliseconds(200));  // poll interval while waiting for the reload
  }
  EXPECT_OK(last);
}

}  // namespace
}  // namespace fedshare::testing
