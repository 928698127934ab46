// Issue 13: a foundation's answer grows with its partners (each one's
// coverage, receipt and own answer), and with thousands of partners passes
// what one gRPC message may carry: gRPC's default 4 MiB that a client
// receives, and the 16 MiB a node sends. Here six real partners each answer
// about 2.6 MiB (3,000 cells with a 100-bin histogram), so the whole answer
// is about 18 MiB. FederatedAggregateStream must bring it to the analyst whole,
// in parts no larger than about 1 MiB or one partner's answer;
// FederatedAggregate, which sends one message, must say it cannot and what to
// use instead; and `fedshare query` must print it. A foundation holds no more
// of the answers than limits.federated_answer_budget_bytes, and says which
// partners it left out.
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fedshare/v1/federation.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/common/wire_limits.h"
#include "node/identity/channel.h"
#include "node/server/config.h"
#include "node/server/node.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;
using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "fedshare.test";
constexpr int kPartners = 6;
constexpr int kYears = 150;         // cohort years per program and region
constexpr int kPeoplePerCell = 10;  // each cell's subjects, above every threshold
// Room for two partners' answers of about 2.5 MiB, not three.
constexpr int64_t kBudget = int64_t{6} << 20;
constexpr char kSql[] =
    "SELECT program, region, cohort_year, COUNT(*), HISTOGRAM(outcome_score, 0, 100, 100) "
    "FROM program_outcomes GROUP BY program, region, cohort_year PURPOSE 'program-evaluation'";

// kPeoplePerCell people in every (program, region, cohort year) cell.
std::string Records(const std::string& org) {
  const char* programs[] = {"literacy", "numeracy", "mentoring", "employment"};
  const char* regions[] = {"north", "south", "east", "west", "central"};
  std::string csv = kProgramOutcomesCsvHeader;
  int s = 0;
  for (const char* program : programs) {
    for (const char* region : regions) {
      for (int year = 1870; year < 1870 + kYears; ++year) {
        for (int k = 0; k < kPeoplePerCell; ++k, ++s) {
          absl::StrAppend(&csv, org, "-", s, ",", program, ",", region, ",", year, ",30,true,",
                          (s * 37) % 100, ",", s % 30, ",0\n");
        }
      }
    }
  }
  return csv;
}

std::string Consents(const std::string& org) {
  std::string csv = "subject,purpose,event,time,valid_until,scope\n";
  for (int s = 0; s < 20 * kYears * kPeoplePerCell; ++s) {
    absl::StrAppend(&csv, org, "-", s, ",program-evaluation,GIVEN,2025-06-01,,*\n");
  }
  return csv;
}

class LargeAnswerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { shared_ = new Shared(); }
  static void TearDownTestSuite() {
    delete shared_;
    shared_ = nullptr;
  }

  void SetUp() override {
    if (!shared_->started) shared_->Start();
    ASSERT_TRUE(shared_->started) << "the federation did not start";
  }

  // Five partners and a foundation, started once for the suite: each
  // partner's ingest is the slow part.
  struct Shared {
    void Start() {
      const std::string foundation_id = pki.Issue("foundation", Role::kNode);
      v1::NodeConfig foundation =
          BaseNodeConfig("foundation", kTrustDomain, tmp.Sub("foundation-data"), foundation_id);
      for (int p = 1; p <= kPartners; ++p) {
        const std::string org = absl::StrCat("partner-", p);
        const std::string id = pki.Issue(org, Role::kNode);
        v1::NodeConfig config = BaseNodeConfig(org, kTrustDomain, tmp.Sub(org + "-data"), id);
        *config.add_datasets() = ProgramOutcomesSchema();
        v1::Agreement a = OpenAgreement("foundation-open", "foundation");
        a.mutable_disclosure()->set_repeat_limit(1000);
        *config.add_agreements() = a;
        if (absl::Status s = server::ValidateNodeConfig(config); !s.ok()) {
          ADD_FAILURE() << s;
          return;
        }
        absl::StatusOr<std::unique_ptr<server::Node>> node =
            server::Node::Create(config, server::NodeOptions());
        if (!node.ok()) {
          ADD_FAILURE() << node.status();
          return;
        }
        auto admin = Connect((*node)->local_address(), pki.Issue(org, Role::kOperator, "op"),
                             kTrustDomain, org);
        if (admin == nullptr) return;
        absl::StatusOr<v1::IngestResponse> ingested =
            admin->Ingest("program_outcomes", v1::CSV, false, Records(org));
        absl::StatusOr<v1::ConsentImportResponse> consented = admin->ImportConsent(Consents(org));
        if (!ingested.ok() || !consented.ok()) {
          ADD_FAILURE() << ingested.status() << " " << consented.status();
          return;
        }
        v1::PeerConfig* peer = foundation.add_peers();
        peer->set_org_id(org);
        peer->set_address((*node)->peer_address());
        nodes.push_back(*std::move(node));
      }
      absl::StatusOr<std::unique_ptr<server::Node>> node =
          server::Node::Create(foundation, server::NodeOptions());
      if (!node.ok()) {
        ADD_FAILURE() << node.status();
        return;
      }
      foundation_node = *std::move(node);
      analyst_dir = pki.Issue("foundation", Role::kAnalyst, "ana");
      analyst = Connect(foundation_node->local_address(), analyst_dir, kTrustDomain);

      // The same foundation on a store of its own, holding at most two
      // partners' answers.
      foundation.set_data_dir(tmp.Sub("budgeted-data"));
      foundation.mutable_limits()->set_federated_answer_budget_bytes(kBudget);
      node = server::Node::Create(foundation, server::NodeOptions());
      if (!node.ok()) {
        ADD_FAILURE() << node.status();
        return;
      }
      budgeted_node = *std::move(node);
      budgeted_analyst = Connect(budgeted_node->local_address(), analyst_dir, kTrustDomain);
      started = analyst != nullptr && budgeted_analyst != nullptr;
    }

    TempDir tmp{"large_answer"};
    Pki pki{tmp.Sub("pki"), kTrustDomain};
    std::vector<std::unique_ptr<server::Node>> nodes;
    std::unique_ptr<server::Node> foundation_node;
    std::string analyst_dir;
    std::unique_ptr<client::NodeClient> analyst;
    std::unique_ptr<server::Node> budgeted_node;
    std::unique_ptr<client::NodeClient> budgeted_analyst;
    bool started = false;
  };

  static v1::FederatedAggregateRequest Question() {
    v1::FederatedAggregateRequest request;
    request.set_sql(kSql);
    request.set_all_peers(true);
    request.set_deadline_ms(60000);
    return request;
  }

  // The stream's events as they came, read with a channel of our own that
  // receives what a node may send.
  static std::vector<v1::FederatedAggregateEvent> StreamEvents(grpc::Status* status) {
    identity::ServerExpectation expect;
    expect.trust_domain = kTrustDomain;
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxReplyBytes);
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = identity::MakeChannel(
        shared_->foundation_node->local_address(), Pki::Files(shared_->analyst_dir), expect, args);
    std::vector<v1::FederatedAggregateEvent> events;
    if (!channel.ok()) {
      ADD_FAILURE() << channel.status();
      return events;
    }
    auto stub = v1::FederationService::NewStub(*channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = stub->FederatedAggregateStream(&context, Question());
    v1::FederatedAggregateEvent event;
    while (reader->Read(&event)) events.push_back(event);
    *status = reader->Finish();
    return events;
  }

  static inline Shared* shared_ = nullptr;
};

TEST_F(LargeAnswerTest, TheStreamBringsAnAnswerLargerThanOneMessageInParts) {
  grpc::Status status;
  std::vector<v1::FederatedAggregateEvent> events = StreamEvents(&status);
  ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();

  // Progress for every partner, then the parts, then the result.
  int progress = 0, parts = 0, results = 0, cells_in_parts = 0;
  size_t largest_answer = 0;
  v1::FederatedAggregateResponse merged;
  for (size_t i = 0; i < events.size(); ++i) {
    const v1::FederatedAggregateEvent& e = events[i];
    if (e.has_progress()) {
      progress += e.progress().partners_size();
      EXPECT_EQ(e.progress().finished(), progress);
      EXPECT_EQ(parts + results, 0) << "progress after the result began, event " << i;
    } else if (e.has_result_part()) {
      ++parts;
      EXPECT_EQ(results, 0) << "a part after the result, event " << i;
      // Of the combined table, parts carry cells only.
      v1::AggregateResult rest = e.result_part().combined();
      cells_in_parts += rest.cells_size();
      rest.clear_cells();
      EXPECT_EQ(rest.ByteSizeLong(), 0u) << "a part carries more of the combined table than cells";
      for (const v1::AggregateResult& a : e.result_part().partners()) {
        largest_answer = std::max(largest_answer, a.ByteSizeLong());
      }
      merged.MergeFrom(e.result_part());
    } else if (e.has_result()) {
      ++results;
      EXPECT_EQ(e.result().coverage_size() + e.result().partners_size() +
                    e.result().combined().cells_size(),
                0)
          << "the result repeats what the parts carried";
      merged.MergeFrom(e.result());
    }
  }
  EXPECT_EQ(progress, kPartners);
  EXPECT_EQ(results, 1);
  EXPECT_EQ(cells_in_parts, 20 * kYears);
  EXPECT_EQ(events.back().kind_case(), v1::FederatedAggregateEvent::kResult);
  // The whole is past one message; no part is much past its share.
  EXPECT_GT(merged.ByteSizeLong(), static_cast<size_t>(kMaxReplyBytes));
  EXPECT_GE(parts, kPartners);
  EXPECT_GT(largest_answer, size_t{2} << 20);
  for (const v1::FederatedAggregateEvent& e : events) {
    if (!e.has_result_part()) continue;
    const size_t bytes = e.result_part().ByteSizeLong();
    EXPECT_LE(bytes, std::max(kResultPartBytes, largest_answer) + 4096);
  }

  // Every partner answered and is in the combined table.
  ASSERT_EQ(merged.coverage_size(), kPartners);
  for (const v1::PartnerCoverage& c : merged.coverage()) {
    EXPECT_EQ(c.state(), v1::PartnerCoverage::ANSWERED) << c.org_id() << ": " << c.reason();
    EXPECT_EQ(c.released_cells(), 20 * kYears) << c.org_id();
  }
  ASSERT_EQ(merged.partners_size(), kPartners);
  ASSERT_EQ(merged.combined().cells_size(), 20 * kYears);
  for (const v1::Cell& cell : merged.combined().cells()) {
    ASSERT_EQ(cell.partners(), kPartners);
    EXPECT_EQ(cell.values(0).value(), static_cast<double>(kPartners * kPeoplePerCell));
  }
  EXPECT_FALSE(merged.combined().receipt().entry_hash().empty());

  // The client's own reading of the stream gives the same.
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse r,
                       shared_->analyst->FederatedAggregateStream(Question(), nullptr));
  ASSERT_EQ(r.coverage_size(), kPartners);
  ASSERT_EQ(r.partners_size(), kPartners);
  ASSERT_EQ(r.combined().cells_size(), merged.combined().cells_size());
  for (int i = 0; i < r.combined().cells_size(); ++i) {
    ASSERT_TRUE(google::protobuf::util::MessageDifferencer::Equals(r.combined().cells(i),
                                                                   merged.combined().cells(i)))
        << "cell " << i;
  }
}

TEST_F(LargeAnswerTest, TheStreamsPartsMergeToWhatOneMessageGives) {
  // Two partners: about 8 MiB, which one message still carries.
  v1::FederatedAggregateRequest two = Question();
  two.set_all_peers(false);
  two.add_peers("partner-1");
  two.add_peers("partner-2");
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse whole,
                       shared_->analyst->FederatedAggregate(two));
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse parts,
                       shared_->analyst->FederatedAggregateStream(two, nullptr));
  ASSERT_GT(whole.ByteSizeLong(), size_t{4} << 20);
  // The same, in the same order, but for what each asking makes anew (the
  // receipts of the audit entries it wrote, and when each partner answered).
  for (v1::FederatedAggregateResponse* r : {&whole, &parts}) {
    r->mutable_combined()->clear_receipt();
    r->mutable_combined()->clear_answered_at_unix_ms();
    for (v1::PartnerCoverage& c : *r->mutable_coverage()) c.clear_receipt();
    for (v1::AggregateResult& a : *r->mutable_partners()) {
      a.clear_receipt();
      a.clear_answered_at_unix_ms();
    }
  }
  google::protobuf::util::MessageDifferencer differ;
  std::string differences;
  differ.ReportDifferencesToString(&differences);
  EXPECT_TRUE(differ.Compare(whole, parts)) << differences.substr(0, 2000);
  EXPECT_EQ(parts.combined().cells_size(), 20 * kYears);
}

TEST_F(LargeAnswerTest, OneMessageCannotCarryItAndSaysWhatCan) {
  absl::StatusOr<v1::FederatedAggregateResponse> whole =
      shared_->analyst->FederatedAggregate(Question());
  ASSERT_FALSE(whole.ok());
  EXPECT_EQ(whole.status().code(), absl::StatusCode::kResourceExhausted) << whole.status();
  EXPECT_THAT(whole.status().message(), HasSubstr("more than the 16 MiB a node sends"));
  EXPECT_THAT(whole.status().message(), HasSubstr("FederatedAggregateStream"));
  EXPECT_THAT(whole.status().message(), HasSubstr(absl::StrCat(kPartners, " partners")));
}

TEST_F(LargeAnswerTest, AnswersPastTheFoundationsBudgetAreLeftOutAndSaidSo) {
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse r,
                       shared_->budgeted_analyst->FederatedAggregateStream(Question(), nullptr));
  int answered = 0, left_out = 0;
  for (const v1::PartnerCoverage& c : r.coverage()) {
    if (c.state() == v1::PartnerCoverage::ANSWERED) {
      ++answered;
      continue;
    }
    ++left_out;
    EXPECT_EQ(c.state(), v1::PartnerCoverage::FAILED) << c.org_id() << ": " << c.reason();
    EXPECT_THAT(c.reason(), HasSubstr(absl::StrCat("past limits.federated_answer_budget_bytes = ",
                                                   kBudget, ", so its figures are left out")));
    EXPECT_EQ(c.released_cells(), 0);
    // The partner did answer: its receipt is kept, and checked.
    EXPECT_FALSE(c.receipt().entry_hash().empty()) << c.org_id();
    EXPECT_TRUE(c.audit_error().empty()) << c.audit_error();
  }
  EXPECT_EQ(answered, 2);
  EXPECT_EQ(left_out, kPartners - 2);
  // The combined table holds the two answers kept, and only them.
  ASSERT_EQ(r.partners_size(), 2);
  ASSERT_EQ(r.combined().cells_size(), 20 * kYears);
  for (const v1::Cell& cell : r.combined().cells()) {
    ASSERT_EQ(cell.partners(), 2);
    EXPECT_EQ(cell.values(0).value(), static_cast<double>(2 * kPeoplePerCell));
  }
}

TEST_F(LargeAnswerTest, TheCliPrintsIt) {
  ProcessOutcome out =
      RunCliAs(shared_->tmp, shared_->analyst_dir, shared_->foundation_node->local_address(),
               {"query", "--sql", kSql, "--all-peers", "--output", "json"});
  ASSERT_EQ(out.exit_code, 0) << out.err;
  v1::FederatedAggregateResponse printed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(out.out, &printed).ok())
      << out.out.substr(0, 200);
  EXPECT_EQ(printed.coverage_size(), kPartners);
  EXPECT_EQ(printed.combined().cells_size(), 20 * kYears);
}

}  // namespace
}  // namespace fedshare::testing
