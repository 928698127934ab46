// Issue 13: a partner whose answer does not fit the question is left out of
// the federation's answer, said out loud. partner-b here is compromised: its
// peer listener is a relay of this test holding partner-b's node
// certificate, which passes each question to the real partner-b node (so the
// answer carries partner-b's genuine, signed receipt) and alters the figures
// on the way back, as a partner that signs whatever it sends could. The
// foundation must mark partner-b FAILED, naming what does not fit, and answer
// with partner-a's figures alone, never with a NaN, a short cell or a count
// that overflows.
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "fedshare/v1/peer.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/identity/server_credentials.h"
#include "node/server/config.h"
#include "node/server/node.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;
using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "fedshare.test";
constexpr char kSql[] =
    "SELECT program, COUNT(*), AVG(outcome_score), HISTOGRAM(outcome_score, 0, 100, 4) "
    "FROM program_outcomes GROUP BY program PURPOSE 'program-evaluation'";

std::string Records(const std::string& org, int n) {
  std::string csv = kProgramOutcomesCsvHeader;
  const char* programs[] = {"literacy", "numeracy"};
  for (int s = 0; s < n; ++s) {
    absl::StrAppend(&csv, org, "-", s, ",", programs[s % 2], ",north,", 2019 + s % 5, ",",
                    20 + s % 40, ",true,", (s * 7) % 100, ",", s % 30, ",0\n");
  }
  return csv;
}

std::string Consents(const std::string& org, int n) {
  std::string csv = "subject,purpose,event,time,valid_until,scope\n";
  for (int s = 0; s < n; ++s) {
    absl::StrAppend(&csv, org, "-", s, ",program-evaluation,GIVEN,2025-06-01,,*\n");
  }
  return csv;
}

// partner-b's peer listener, compromised: each question goes to the real
// partner-b node, and its answer comes back through `alter`.
class AlteringRelay final : public v1::PeerService::Service {
 public:
  explicit AlteringRelay(std::unique_ptr<client::NodeClient> real) : real_(std::move(real)) {}

  void SetAlter(std::function<void(v1::AggregateResult&)> alter) {
    absl::MutexLock lock(&mu_);
    alter_ = std::move(alter);
  }

  grpc::Status Aggregate(grpc::ServerContext*, const v1::AggregateRequest* request,
                         v1::AggregateResponse* response) override {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<v1::AggregateResult> real = real_->Aggregate(*request);
    if (!real.ok()) {
      return grpc::Status(static_cast<grpc::StatusCode>(real.status().code()),
                          std::string(real.status().message()));
    }
    if (alter_) alter_(*real);
    *response->mutable_result() = *std::move(real);
    return grpc::Status::OK;
  }

 private:
  absl::Mutex mu_;
  std::unique_ptr<client::NodeClient> real_ ABSL_GUARDED_BY(mu_);
  std::function<void(v1::AggregateResult&)> alter_ ABSL_GUARDED_BY(mu_);
};

class MisfitPartnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string foundation_id = pki_.Issue("foundation", Role::kNode);
    for (const auto& [org, people] : {std::pair<std::string, int>{"partner-a", 200},
                                      std::pair<std::string, int>{"partner-b", 300}}) {
      node_ids_[org] = pki_.Issue(org, Role::kNode);
      const std::string op = pki_.Issue(org, Role::kOperator, "op");
      v1::NodeConfig config =
          BaseNodeConfig(org, kTrustDomain, tmp_.Sub(org + "-data"), node_ids_[org]);
      *config.add_datasets() = ProgramOutcomesSchema();
      v1::Agreement a = OpenAgreement("foundation-open", "foundation");
      a.mutable_disclosure()->set_repeat_limit(1000);
      *config.add_agreements() = a;
      ASSERT_OK(server::ValidateNodeConfig(config));
      ASSERT_OK_AND_ASSIGN(nodes_[org], server::Node::Create(config, server::NodeOptions()));
      auto admin = Connect(nodes_[org]->local_address(), op, kTrustDomain, org);
      ASSERT_NE(admin, nullptr);
      ASSERT_OK(admin->Ingest("program_outcomes", v1::CSV, false, Records(org, people)).status());
      ASSERT_OK_AND_ASSIGN(auto consented, admin->ImportConsent(Consents(org, people)));
      ASSERT_EQ(consented.events_rejected(), 0);
    }

    // The relay asks the real partner-b as the foundation's node would.
    auto to_b =
        Connect(nodes_["partner-b"]->peer_address(), foundation_id, kTrustDomain, "partner-b");
    ASSERT_NE(to_b, nullptr);
    relay_ = std::make_unique<AlteringRelay>(std::move(to_b));
    v1::NodeConfig relay_tls =
        BaseNodeConfig("partner-b", kTrustDomain, tmp_.Sub("relay"), node_ids_["partner-b"]);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", identity::MakeServerCredentials(relay_tls.tls()),
                             &port);
    builder.RegisterService(relay_.get());
    relay_server_ = builder.BuildAndStart();
    ASSERT_NE(relay_server_, nullptr);
    ASSERT_GT(port, 0);

    v1::NodeConfig foundation =
        BaseNodeConfig("foundation", kTrustDomain, tmp_.Sub("foundation-data"), foundation_id);
    v1::PeerConfig* a = foundation.add_peers();
    a->set_org_id("partner-a");
    a->set_address(nodes_["partner-a"]->peer_address());
    v1::PeerConfig* b = foundation.add_peers();
    b->set_org_id("partner-b");
    b->set_address(absl::StrCat("127.0.0.1:", port));
    ASSERT_OK_AND_ASSIGN(nodes_["foundation"],
                         server::Node::Create(foundation, server::NodeOptions()));
    analyst_ = Connect(nodes_["foundation"]->local_address(),
                       pki_.Issue("foundation", Role::kAnalyst, "ana"), kTrustDomain);
    ASSERT_NE(analyst_, nullptr);
  }

  void TearDown() override {
    if (relay_server_ != nullptr) relay_server_->Shutdown();
  }

  absl::StatusOr<v1::FederatedAggregateResponse> Ask(const std::vector<std::string>& peers) {
    v1::FederatedAggregateRequest request;
    request.set_sql(kSql);
    if (peers.empty()) request.set_all_peers(true);
    for (const std::string& p : peers) request.add_peers(p);
    return analyst_->FederatedAggregate(request);
  }

  static const v1::PartnerCoverage& Coverage(const v1::FederatedAggregateResponse& r,
                                             const std::string& org) {
    for (const v1::PartnerCoverage& c : r.coverage()) {
      if (c.org_id() == org) return c;
    }
    return v1::PartnerCoverage::default_instance();
  }

  static bool SameCells(const v1::AggregateResult& x, const v1::AggregateResult& y) {
    if (x.cells_size() != y.cells_size()) return false;
    for (int i = 0; i < x.cells_size(); ++i) {
      if (!google::protobuf::util::MessageDifferencer::Equals(x.cells(i), y.cells(i))) return false;
    }
    return x.unlisted_withheld_cells() == y.unlisted_withheld_cells();
  }

  TempDir tmp_{"misfit_partner"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  std::map<std::string, std::string> node_ids_;
  std::map<std::string, std::unique_ptr<server::Node>> nodes_;
  std::unique_ptr<AlteringRelay> relay_;
  std::unique_ptr<grpc::Server> relay_server_;
  std::unique_ptr<client::NodeClient> analyst_;
};

TEST_F(MisfitPartnerTest, AnAnswerThatDoesNotFitTheQuestionIsLeftOutAndSaidSo) {
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse a_alone, Ask({"partner-a"}));
  ASSERT_EQ(a_alone.combined().cells_size(), 2) << a_alone.DebugString();

  // Unaltered, the relay's answers are partner-b's own and are combined:
  // its receipts check, so nothing else would keep an altered one out.
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse both, Ask({}));
  ASSERT_EQ(Coverage(both, "partner-b").state(), v1::PartnerCoverage::ANSWERED)
      << both.DebugString();
  ASSERT_EQ(both.combined().cells_size(), 2);
  EXPECT_EQ(both.combined().cells(0).partners(), 2);
  EXPECT_EQ(both.combined().cells(0).values(0).value(),
            a_alone.combined().cells(0).values(0).value() + 150);

  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Misfit {
    std::string name;
    std::function<void(v1::AggregateResult&)> alter;
    std::string says;
  };
  const std::vector<Misfit> misfits = {
      {"NaN average",
       [&](v1::AggregateResult& r) { r.mutable_cells(0)->mutable_values(1)->set_value(nan); },
       "cell 0, aggregate 1: a figure is not a finite number"},
      {"infinite count",
       [&](v1::AggregateResult& r) { r.mutable_cells(1)->mutable_values(0)->set_count(inf); },
       "cell 1, aggregate 0: a figure is not a finite number"},
      {"a value short",
       [](v1::AggregateResult& r) { r.mutable_cells(0)->mutable_values()->RemoveLast(); },
       "cell 0 has 2 values for 3 aggregates"},
      {"a key too many",
       [](v1::AggregateResult& r) { r.mutable_cells(0)->add_key()->set_string_value("x"); },
       "cell 0 has 2 key values for 1 group-by fields"},
      {"negative unlisted cells", [](v1::AggregateResult& r) { r.set_unlisted_withheld_cells(-1); },
       "unlisted_withheld_cells is -1"},
      {"bins on a COUNT",
       [](v1::AggregateResult& r) { r.mutable_cells(0)->mutable_values(0)->add_bins(5); },
       "1 histogram bins where the question asks for 0"},
      {"a bin too many",
       [](v1::AggregateResult& r) { r.mutable_cells(0)->mutable_values(2)->add_bins(5); },
       "5 histogram bins where the question asks for 4"},
      {"a withheld bin that is no bin",
       [](v1::AggregateResult& r) { r.mutable_cells(0)->mutable_values(2)->add_withheld_bins(7); },
       "withheld bin 7 is no bin"},
      {"a withholding of negative cells",
       [](v1::AggregateResult& r) {
         v1::Withholding* w = r.add_withholdings();
         w->set_rule("min-subjects");
         w->set_cells(-3);
       },
       "withholding 'min-subjects' counts -3 cells"},
  };
  for (const Misfit& m : misfits) {
    SCOPED_TRACE(m.name);
    relay_->SetAlter(m.alter);
    ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse r, Ask({}));
    const v1::PartnerCoverage& b = Coverage(r, "partner-b");
    EXPECT_EQ(b.state(), v1::PartnerCoverage::FAILED) << b.DebugString();
    EXPECT_THAT(b.reason(), HasSubstr("its answer does not fit the question"));
    EXPECT_THAT(b.reason(), HasSubstr(m.says));
    EXPECT_EQ(Coverage(r, "partner-a").state(), v1::PartnerCoverage::ANSWERED);
    // The federation's answer is partner-a's alone, figure for figure.
    EXPECT_TRUE(SameCells(r.combined(), a_alone.combined())) << r.combined().DebugString();
    for (const v1::AggregateResult& partner : r.partners()) {
      EXPECT_NE(partner.org_id(), "partner-b");
    }
  }
}

}  // namespace
}  // namespace fedshare::testing
