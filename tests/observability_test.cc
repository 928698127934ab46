// Issue 12: the plaintext probe and metrics endpoints of a real node. The
// counters on /metrics must move by exactly the questions answered, refused
// and failed, the ingest rows and the fan-out calls made; the plaintext gRPC
// listener must answer health checks and refuse every data and admin method.
// The binary's ready line names the metrics listener's bound port.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "fedshare/v1/admin.grpc.pb.h"
#include "fedshare/v1/federation.grpc.pb.h"
#include "fedshare/v1/peer.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/server/config.h"
#include "node/server/node.h"
#include "node/server/probe.h"
#include "node/storage/fault_injector.h"
#include "query/sql.h"
#include "testing/partner_fixture.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;
using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "fedshare.test";
constexpr char kPurpose[] = " PURPOSE 'program-evaluation'";

std::string Records(int n) {
  std::string csv =
      "participant_id,program,region,cohort_year,age,completed,outcome_score,sessions_attended,"
      "income\n";
  for (int i = 0; i < n; ++i) {
    absl::StrAppend(&csv, "s", 1000 + i, ",mentoring,north,2020,30,true,", i % 100, ",10,0\n");
  }
  return csv;
}

std::string Consents(int n) {
  std::string csv = "subject,purpose,event,time,valid_until,scope\n";
  for (int i = 0; i < n; ++i) {
    absl::StrAppend(&csv, "s", 1000 + i, ",program-evaluation,GIVEN,2026-01-01T00:00:00Z,,*\n");
  }
  return csv;
}

class ObservabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    analyst_ = pki_.Issue("foundation", Role::kAnalyst, "ana");

    v1::NodeConfig partner = partner_.Config();
    *partner.add_agreements() = OpenAgreement("foundation-eval", "foundation");
    partner.set_health_address("127.0.0.1:0");
    partner.set_metrics_address("127.0.0.1:0");
    server::NodeOptions options;
    options.fault_injector = &faults_;
    ASSERT_OK(partner_.Start(partner, options));
    ASSERT_GT(partner_.node().health_port(), 0);
    ASSERT_GT(partner_.node().metrics_port(), 0);

    v1::NodeConfig foundation = BaseNodeConfig("foundation", kTrustDomain, tmp_.Sub("foundation"),
                                               partner_.foundation_identity());
    foundation.set_metrics_address("127.0.0.1:0");
    v1::PeerConfig* peer = foundation.add_peers();
    peer->set_org_id("partner-a");
    peer->set_address(partner_.node().peer_address());
    ASSERT_OK(server::ValidateNodeConfig(foundation));
    ASSERT_OK_AND_ASSIGN(foundation_, server::Node::Create(foundation, server::NodeOptions()));
  }

  absl::Status Ask(const std::string& sql) {
    absl::StatusOr<v1::AggregateQuery> query = ParseSql(sql);
    if (!query.ok()) return query.status();
    return partner_.peer().Aggregate(*query).status();
  }

  std::string Scrape(const server::Node& node) {
    std::string response = HttpGet(node.metrics_port(), "/metrics");
    EXPECT_THAT(response, ::testing::StartsWith("HTTP/1.1 200 OK"));
    return response;
  }

  TempDir tmp_{"observability"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  std::string analyst_;
  storage::FaultInjector faults_;  // outlives the partner's node
  PartnerFixture partner_{tmp_, pki_};
  std::unique_ptr<server::Node> foundation_;
};

TEST_F(ObservabilityTest, CountersMoveByExactlyTheQuestionsAnsweredRefusedAndFailed) {
  std::string before = Scrape(partner_.node());
  ASSERT_OK_AND_ASSIGN(v1::IngestResponse ingested,
                       partner_.admin().Ingest("program_outcomes", v1::CSV, false, Records(30)));
  ASSERT_EQ(ingested.rows_written(), 30);
  ASSERT_OK(partner_.admin().ImportConsent(Consents(30)).status());

  const std::string count = absl::StrCat("SELECT COUNT(*) FROM program_outcomes", kPurpose);
  for (int i = 0; i < 3; ++i) ASSERT_OK(Ask(count));
  for (int i = 0; i < 2; ++i) {
    EXPECT_THAT(Ask("SELECT COUNT(*) FROM program_outcomes PURPOSE 'marketing'"),
                StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("purpose")));
  }
  faults_.SetFailWrites(true);
  EXPECT_THAT(Ask(count), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  faults_.SetFailWrites(false);
  std::string after = Scrape(partner_.node());

  const std::string q = "fedshare_questions_total";
  const std::string method = "method=\"PeerService.Aggregate\"";
  auto delta = [&](const std::string& name, const std::vector<std::string>& labels) {
    return Sum(after, name, labels) - Sum(before, name, labels);
  };
  EXPECT_EQ(delta(q, {method, "outcome=\"answered\""}), 3) << after;
  EXPECT_EQ(delta(q, {method, "outcome=\"refused\""}), 2) << after;
  EXPECT_EQ(delta(q, {method, "outcome=\"refused\"", "rule=\"purpose\""}), 2) << after;
  EXPECT_EQ(delta(q, {method, "outcome=\"failed\""}), 1) << after;
  EXPECT_EQ(delta(q, {method, "outcome=\"failed\"", "rule=\"audit-unavailable\""}), 1) << after;
  EXPECT_EQ(delta("fedshare_audit_appends_total", {"result=\"ok\""}), 5) << after;
  EXPECT_EQ(delta("fedshare_audit_appends_total", {"result=\"error\""}), 1) << after;
  EXPECT_EQ(
      delta("fedshare_ingest_rows_total", {"dataset=\"program_outcomes\"", "result=\"written\""}),
      30)
      << after;
  EXPECT_EQ(Sum(after, "fedshare_audit_entries"), 5) << after;
  // Every answered question is timed once in each stage, freeing its scan
  // state included, so the stages add up to the node's share of a call.
  for (const char* stage :
       {"checks", "queue", "limits", "consent", "scan", "disclosure", "release", "audit"}) {
    EXPECT_EQ(delta("fedshare_answer_stage_seconds_count", {absl::StrCat("stage=\"", stage, "\"")}),
              3)
        << stage << "\n"
        << after;
  }
  EXPECT_GT(Sum(after, "fedshare_rocksdb_block_cache_capacity_bytes"), 0) << after;
  // The test PKI issues node certificates for 365 days (identity::IssueOptions)
  // under a CA of 3650 days.
  EXPECT_NEAR(Sum(after, "fedshare_certificate_days_left", {"file=\"cert\""}), 365, 1) << after;
  EXPECT_NEAR(Sum(after, "fedshare_certificate_days_left", {"file=\"ca\""}), 3650, 1) << after;
  // No subject id is ever a label.
  EXPECT_THAT(after, ::testing::Not(HasSubstr("s10")));
}

TEST_F(ObservabilityTest, FanOutRecordsPerPartnerLatencyAndCoverage) {
  ASSERT_OK(partner_.admin().Ingest("program_outcomes", v1::CSV, false, Records(30)).status());
  ASSERT_OK(partner_.admin().ImportConsent(Consents(30)).status());
  auto analyst = Connect(foundation_->local_address(), analyst_, kTrustDomain, "foundation");
  ASSERT_NE(analyst, nullptr);
  ASSERT_OK_AND_ASSIGN(v1::AggregateQuery query,
                       ParseSql(absl::StrCat("SELECT COUNT(*) FROM program_outcomes", kPurpose)));
  v1::FederatedAggregateRequest request;
  *request.mutable_query() = query;
  request.set_all_peers(true);
  std::string before = Scrape(*foundation_);
  for (int i = 0; i < 2; ++i) ASSERT_OK(analyst->FederatedAggregate(request).status());
  std::string after = Scrape(*foundation_);
  auto delta = [&](const std::string& name, const std::vector<std::string>& labels) {
    return Sum(after, name, labels) - Sum(before, name, labels);
  };
  EXPECT_EQ(delta("fedshare_peer_call_seconds_count", {"peer=\"partner-a\""}), 2) << after;
  EXPECT_EQ(delta("fedshare_peer_call_seconds_bucket", {"peer=\"partner-a\"", "le=\"+Inf\""}), 2);
  EXPECT_EQ(delta("fedshare_fanout_partners_total", {"peer=\"partner-a\"", "state=\"answered\""}),
            2)
      << after;
  EXPECT_EQ(delta("fedshare_questions_total",
                  {"method=\"FederationService.FederatedAggregate\"", "outcome=\"answered\""}),
            2)
      << after;
}

TEST_F(ObservabilityTest, StatusShowsTheMetricsAtAGlanceThroughTheCli) {
  auto status = [&](const server::Node& node, const std::string& identity) {
    ProcessOutcome o = RunCliAs(tmp_, identity, node.local_address(), {"status"});
    EXPECT_EQ(o.exit_code, 0) << o.err;
    return o.out;
  };
  std::string before = status(partner_.node(), partner_.operator_identity());
  EXPECT_THAT(before, HasSubstr("questions:     0 answered, 0 refused, 0 failed (since start)\n"));
  EXPECT_THAT(before, HasSubstr("ingest rows:   0 written, 0 rejected\n"));

  ASSERT_OK(partner_.admin().Ingest("program_outcomes", v1::CSV, false, Records(30)).status());
  ASSERT_OK(partner_.admin().ImportConsent(Consents(30)).status());
  const std::string count = absl::StrCat("SELECT COUNT(*) FROM program_outcomes", kPurpose);
  for (int i = 0; i < 2; ++i) ASSERT_OK(Ask(count));
  for (int i = 0; i < 2; ++i) {
    EXPECT_THAT(Ask("SELECT COUNT(*) FROM program_outcomes PURPOSE 'marketing'"),
                StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
  }
  // The third answer goes to the foundation's fan-out, which shows in its
  // own coverage.
  auto analyst = Connect(foundation_->local_address(), analyst_, kTrustDomain, "foundation");
  ASSERT_NE(analyst, nullptr);
  ASSERT_OK_AND_ASSIGN(v1::AggregateQuery query, ParseSql(count));
  v1::FederatedAggregateRequest request;
  *request.mutable_query() = query;
  request.set_all_peers(true);
  EXPECT_THAT(status(*foundation_, analyst_),
              HasSubstr("fan-out:       0 of 0 partner calls answered\n"));
  ASSERT_OK(analyst->FederatedAggregate(request).status());
  std::string foundation = status(*foundation_, analyst_);
  EXPECT_THAT(foundation, HasSubstr("fan-out:       1 of 1 partner calls answered\n"));
  EXPECT_THAT(foundation, HasSubstr("questions:     1 answered, 0 refused, 0 failed"));
  // A failed write leaves the store failing, so this comes last.
  faults_.SetFailWrites(true);
  EXPECT_THAT(Ask(count), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  faults_.SetFailWrites(false);

  std::string after = status(partner_.node(), partner_.operator_identity());
  EXPECT_THAT(after, HasSubstr("questions:     3 answered, 2 refused, 1 failed (since start)\n"
                               "  refused by purpose: 2\n"
                               "  failed by audit-unavailable: 1\n"));
  EXPECT_THAT(after, HasSubstr("audit appends: 5 ok, 1 failed\n"));
  EXPECT_THAT(after, HasSubstr("ingest rows:   30 written, 0 rejected\n"));
  EXPECT_THAT(after, ::testing::ContainsRegex("store size:    [0-9.]+ (KiB|MiB)\n"));
  // Node certificates of the test PKI last 365 days, its CA 3650.
  EXPECT_THAT(after,
              ::testing::ContainsRegex("certificate:   36[45] days left, CA 36(49|50) days left"));
}

TEST_F(ObservabilityTest, PlaintextListenerAnswersHealthAndRefusesEveryDataAndAdminMethod) {
  std::shared_ptr<grpc::Channel> plain =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", partner_.node().health_port()),
                          grpc::InsecureChannelCredentials());
  ASSERT_OK_AND_ASSIGN(bool serving, server::CheckHealth(plain, absl::Seconds(20)));
  EXPECT_TRUE(serving);

  const google::protobuf::DescriptorPool* pool = google::protobuf::DescriptorPool::generated_pool();
  int refused = 0;
  for (const char* name :
       {"fedshare.v1.PeerService", "fedshare.v1.AdminService", "fedshare.v1.FederationService"}) {
    const google::protobuf::ServiceDescriptor* service = pool->FindServiceByName(name);
    ASSERT_NE(service, nullptr) << name;
    for (int i = 0; i < service->method_count(); ++i) {
      std::string method = absl::StrCat("/", name, "/", service->method(i)->name());
      grpc::Status status = CallRaw(plain, method).status;
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED) << method;
      ++refused;
    }
  }
  EXPECT_GE(refused, 10);
  // Nor is the list of services offered there.
  EXPECT_EQ(CallRaw(plain, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
                .status.error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  // The metrics port serves metrics, not gRPC or data.
  EXPECT_THAT(HttpGet(partner_.node().metrics_port(), "/fedshare.v1.AdminService/Status"),
              ::testing::StartsWith("HTTP/1.1 404"));
  // The mTLS listeners still work as before.
  ASSERT_OK(partner_.admin().Status().status());
}

TEST_F(ObservabilityTest, ProbeChecksHealthOverMutualTlsWithTheNodeIdentity) {
  v1::NodeConfig config = partner_.node().config();
  config.set_peer_address(partner_.node().peer_address());
  config.set_local_address(partner_.node().local_address());
  EXPECT_OK(server::ProbeNode(config, server::ProbeTarget::kPeer, absl::Seconds(20)));
  EXPECT_OK(server::ProbeNode(config, server::ProbeTarget::kLocal, absl::Seconds(20)));
  partner_.node().Shutdown();
  EXPECT_THAT(server::ProbeNode(config, server::ProbeTarget::kPeer, absl::Seconds(5)),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
}

// The fedshare-node binary names its metrics listener in its ready line, at
// the port it bound: a script that configures port 0 can scrape it.
TEST(ReadyLineTest, NamesTheMetricsListenerAtItsBoundPortOnlyWhenOneIsConfigured) {
  TempDir tmp("ready_line");
  Pki pki(tmp.Sub("pki"), kTrustDomain);
  v1::NodeConfig config = BaseNodeConfig("partner-a", kTrustDomain, tmp.Sub("data"),
                                         pki.Issue("partner-a", Role::kNode));
  config.set_metrics_address("127.0.0.1:0");
  ASSERT_OK_AND_ASSIGN(NodeProcess with_metrics,
                       StartNodeProcess(config, tmp.Sub("with-metrics.textproto")));
  absl::string_view address = with_metrics.metrics_address;
  ASSERT_TRUE(absl::ConsumePrefix(&address, "127.0.0.1:")) << address;
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(address, &port)) << address;
  EXPECT_GT(port, 0);
  const std::string response = HttpGet(port, "/metrics");
  EXPECT_THAT(response, ::testing::StartsWith("HTTP/1.1 200 OK"));
  EXPECT_THAT(response, ::testing::HasSubstr("fedshare_"));
  EXPECT_EQ(WEXITSTATUS(with_metrics.process->Signal(SIGTERM)), 0);

  config.clear_metrics_address();
  ASSERT_OK_AND_ASSIGN(NodeProcess without,
                       StartNodeProcess(config, tmp.Sub("without-metrics.textproto")));
  EXPECT_EQ(without.metrics_address, "");
  EXPECT_FALSE(without.peer_address.empty());
}

}  // namespace
}  // namespace fedshare::testing
