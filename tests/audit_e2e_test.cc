// Issue 10, items 5 and 7, end to end: a foundation and two partners as real
// fedshare-node processes on loopback with real certificates. One question
// fanned out carries one hash in every org's audit log; a partner's
// `fedshare audit show` (the real CLI) shows the question as applied and the
// analyst it was asked for (unverified), and filters by caller, decision and
// time.
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/common/time_util.h"
#include "query/sql.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kTrustDomain[] = "fedshare.test";
constexpr char kAna[] = "spiffe://fedshare.test/org/foundation/analyst/ana";
constexpr char kBob[] = "spiffe://fedshare.test/org/foundation/analyst/bob";
// age has granularity 5: the partners apply 18..41 as "age >= 15 AND age < 40".
constexpr char kAnaSql[] =
    "SELECT program, COUNT(*) FROM program_outcomes WHERE age <= 41 AND age >= 18 "
    "GROUP BY program PURPOSE 'program-evaluation'";
constexpr char kBobSql[] =
    "SELECT program, COUNT(*) FROM program_outcomes WHERE cohort_year >= 2020 "
    "GROUP BY program PURPOSE 'program-evaluation'";

std::string Records(const std::string& org) {
  std::string csv =
      "participant_id,program,region,cohort_year,age,completed,outcome_score,sessions_attended,"
      "income\n";
  const char* programs[] = {"literacy", "numeracy"};
  for (int s = 0; s < 400; ++s) {
    absl::StrAppend(&csv, org, "-subject-", s, ",", programs[s % 2], ",north,", 2018 + s % 5, ",",
                    20 + (s * 7) % 40, ",true,", s % 100, ",", s % 30, ",0\n");
  }
  return csv;
}

std::string Consents(const std::string& org) {
  std::string csv = "subject,purpose,event,time,valid_until,scope\n";
  for (int s = 0; s < 400; ++s) {
    absl::StrAppend(&csv, org, "-subject-", s, ",program-evaluation,GIVEN,2025-06-01,,*\n");
  }
  return csv;
}

class AuditE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // partner-a agrees to program-evaluation; partner-b only to marketing,
    // so it refuses the questions below.
    for (const auto& [org, purpose] :
         {std::pair<std::string, std::string>{"partner-a", "program-evaluation"},
          {"partner-b", "marketing"}}) {
      node_ids_[org] = pki_.Issue(org, Role::kNode);
      operators_[org] = pki_.Issue(org, Role::kOperator, "op");
      v1::NodeConfig config =
          BaseNodeConfig(org, kTrustDomain, tmp_.Sub(org + "-data"), node_ids_[org]);
      *config.add_datasets() = ProgramOutcomesSchema();
      v1::Agreement a = OpenAgreement("foundation-" + purpose, "foundation");
      a.clear_purposes();
      a.add_purposes(purpose);
      *config.add_agreements() = a;
      auto started = StartNodeProcess(config, tmp_.Sub(org + ".textproto"));
      ASSERT_OK(started.status());
      auto admin = Connect(started->local_address, operators_[org], kTrustDomain, org);
      ASSERT_NE(admin, nullptr);
      ASSERT_OK(admin->Ingest("program_outcomes", v1::CSV, false, Records(org)).status());
      ASSERT_OK_AND_ASSIGN(auto consented, admin->ImportConsent(Consents(org)));
      ASSERT_EQ(consented.events_rejected(), 0) << consented.DebugString();
      nodes_[org] = std::move(started).value();
    }
    std::string foundation_id = pki_.Issue("foundation", Role::kNode);
    operators_["foundation"] = pki_.Issue("foundation", Role::kOperator, "op");
    ana_ = pki_.Issue("foundation", Role::kAnalyst, "ana");
    bob_ = pki_.Issue("foundation", Role::kAnalyst, "bob");
    v1::NodeConfig config =
        BaseNodeConfig("foundation", kTrustDomain, tmp_.Sub("foundation-data"), foundation_id);
    config.set_peer_deadline_ms(10000);
    for (const auto& [org, node] : nodes_) {
      v1::PeerConfig* peer = config.add_peers();
      peer->set_org_id(org);
      peer->set_address(node.peer_address);
    }
    auto foundation = StartNodeProcess(config, tmp_.Sub("foundation.textproto"));
    ASSERT_OK(foundation.status());
    nodes_["foundation"] = std::move(foundation).value();
  }

  // Runs the real fedshare CLI; stderr goes to a file of its own.
  ProcessOutcome Cli(const std::vector<std::string>& args) { return RunCli(tmp_, args); }

  // The analyst asks every partner through the foundation's node.
  void AskAll(const std::string& analyst_dir, const std::string& sql) {
    ProcessOutcome asked = Cli({"--node", nodes_["foundation"].local_address, "--identity",
                                analyst_dir, "query", "--all-peers", "--sql", sql});
    EXPECT_EQ(asked.exit_code, 3) << asked.out << asked.err;  // partner-b refuses
    EXPECT_THAT(asked.out, HasSubstr("literacy"));
  }

  // `fedshare audit show` on `org`'s node as its operator, with `args`,
  // expecting exit 0.
  ProcessOutcome AuditShow(const std::string& org, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {
        "--node", nodes_[org].local_address, "--identity", operators_[org], "audit", "show"};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessOutcome shown = Cli(argv);
    EXPECT_EQ(shown.exit_code, 0) << shown.out << shown.err;
    return shown;
  }

  // The same, --output json, read back into the message it prints.
  v1::ListAuditResponse AuditJson(const std::string& org, std::vector<std::string> args = {}) {
    args.insert(args.end(), {"--output", "json"});
    ProcessOutcome shown = AuditShow(org, args);
    v1::ListAuditResponse response;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(shown.out, &response).ok())
        << shown.out;
    EXPECT_TRUE(response.chain_valid()) << response.chain_error();
    return response;
  }

  static std::vector<uint64_t> Indexes(const v1::ListAuditResponse& r) {
    std::vector<uint64_t> out;
    for (const v1::AuditEntry& e : r.entries()) out.push_back(e.index());
    return out;
  }

  TempDir tmp_{"audit_e2e"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  std::map<std::string, std::string> node_ids_, operators_;
  std::string ana_, bob_;
  std::map<std::string, NodeProcess> nodes_;
};

TEST_F(AuditE2eTest, OneFannedOutQuestionCarriesOneHashInEveryOrgsLog) {
  AskAll(ana_, kAnaSql);

  const v1::ListAuditResponse foundation = AuditJson("foundation");
  const v1::ListAuditResponse answered = AuditJson("partner-a");
  const v1::ListAuditResponse refused = AuditJson("partner-b");
  ASSERT_EQ(foundation.entries_size(), 1);
  ASSERT_EQ(answered.entries_size(), 1);
  ASSERT_EQ(refused.entries_size(), 1);
  const v1::AuditEntry& f = foundation.entries(0);
  EXPECT_EQ(f.method(), "FederationService.FederatedAggregate");
  EXPECT_EQ(f.caller(), kAna);
  EXPECT_EQ(answered.entries(0).decision(), v1::AuditEntry::ANSWERED);
  EXPECT_EQ(refused.entries(0).decision(), v1::AuditEntry::REFUSED);
  ASSERT_EQ(f.question_hash().size(), 32u);
  EXPECT_EQ(answered.entries(0).question_hash(), f.question_hash());
  EXPECT_EQ(refused.entries(0).question_hash(), f.question_hash());

  // The table shows the same hash prefix at both ends.
  const std::string prefix = absl::BytesToHexString(f.question_hash()).substr(0, 16);
  EXPECT_THAT(AuditShow("foundation", {}).out, HasSubstr("question " + prefix + ": "));
  EXPECT_THAT(AuditShow("partner-a", {}).out, HasSubstr("question " + prefix + ": "));

  // The same question written otherwise (predicates in another order) is
  // the same question; a different one is not.
  AskAll(ana_,
         "SELECT program, COUNT(*) FROM program_outcomes WHERE age >= 18 AND age <= 41 "
         "GROUP BY program PURPOSE 'program-evaluation'");
  AskAll(bob_, kBobSql);
  const v1::ListAuditResponse after = AuditJson("partner-a");
  ASSERT_EQ(after.entries_size(), 3);
  EXPECT_EQ(after.entries(1).question_hash(), f.question_hash());
  EXPECT_NE(after.entries(2).question_hash(), f.question_hash());
  EXPECT_EQ(AuditJson("foundation").entries(2).question_hash(), after.entries(2).question_hash());
}

TEST_F(AuditE2eTest, PartnerSeesTheQuestionAsAppliedAndTheAnalystItWasAskedFor) {
  AskAll(ana_, kAnaSql);

  const v1::ListAuditResponse log = AuditJson("partner-a");
  ASSERT_EQ(log.entries_size(), 1);
  const v1::AuditEntry& e = log.entries(0);
  EXPECT_EQ(e.caller(), "spiffe://fedshare.test/org/foundation/node");
  EXPECT_EQ(e.on_behalf_of(), kAna);
  EXPECT_EQ(e.question().purpose(), "program-evaluation");
  EXPECT_EQ(e.question().dataset(), "program_outcomes");
  ASSERT_EQ(e.question().group_by_size(), 1);
  EXPECT_EQ(e.question().group_by(0), "program");
  ASSERT_EQ(e.question().aggregates_size(), 1);
  EXPECT_EQ(e.question().aggregates(0).kind(), v1::COUNT);
  EXPECT_EQ(e.applied_where_text(), "age >= 15 AND age < 40");
  ASSERT_EQ(e.applied_where_size(), 2);
  EXPECT_EQ(e.applied_where(0).op(), v1::Predicate::LT);
  EXPECT_EQ(e.applied_where(0).values(0).int_value(), 40);
  EXPECT_EQ(e.applied_where(1).op(), v1::Predicate::GE);
  EXPECT_EQ(e.applied_where(1).values(0).int_value(), 15);

  // The raw JSON, as a program reads it.
  const ProcessOutcome json = AuditShow("partner-a", {"--output", "json"});
  EXPECT_THAT(json.out, HasSubstr(absl::StrCat("\"on_behalf_of\":\"", kAna, "\"")));
  // (protobuf's JSON mapping escapes < and >.)
  EXPECT_THAT(json.out, HasSubstr(R"("applied_where_text":"age \u003e= 15 AND age \u003c 40")"));
  EXPECT_THAT(json.out, Not(HasSubstr("-subject-")));  // no subject id, ever

  const ProcessOutcome table = AuditShow("partner-a", {});
  EXPECT_THAT(table.out, HasSubstr(absl::StrCat("on behalf of (unverified): ", kAna, "\n")));
  EXPECT_THAT(table.out,
              HasSubstr("SELECT program, COUNT(*) FROM program_outcomes GROUP BY program PURPOSE "
                        "'program-evaluation'\n"));
  EXPECT_THAT(table.out, HasSubstr("as applied: age >= 15 AND age < 40\n"));

  const ProcessOutcome csv = AuditShow("partner-a", {"--output", "csv"});
  EXPECT_THAT(csv.out, HasSubstr("index,time,decision,caller,on_behalf_of_unverified,"));
  EXPECT_THAT(csv.out, HasSubstr(absl::StrCat(",answered,spiffe://fedshare.test/org/foundation/"
                                              "node,",
                                              kAna, ",")));
  EXPECT_THAT(csv.out, HasSubstr(",age >= 15 AND age < 40,"));

  // The refusing partner never checked the question against a schema: it
  // keeps the filters' fields, not their values.
  const v1::ListAuditResponse refused = AuditJson("partner-b");
  ASSERT_EQ(refused.entries_size(), 1);
  const v1::AuditEntry& r = refused.entries(0);
  EXPECT_EQ(r.on_behalf_of(), kAna);
  EXPECT_EQ(r.applied_where_size(), 0);
  ASSERT_EQ(r.question().where_size(), 2);
  EXPECT_EQ(r.question().where(0).values_size(), 0);
  EXPECT_THAT(AuditShow("partner-b", {}).out, HasSubstr("filters on: age LE, age GE\n"));
}

TEST_F(AuditE2eTest, OnBehalfOfMustNameAPersonOfTheAskingOrg) {
  // partner-b's node asks partner-a directly, claiming a foundation analyst.
  auto direct =
      Connect(nodes_["partner-a"].peer_address, node_ids_["partner-b"], kTrustDomain, "partner-a");
  ASSERT_NE(direct, nullptr);
  v1::AggregateRequest request;
  ASSERT_OK_AND_ASSIGN(*request.mutable_query(), ParseSql(kBobSql));
  request.set_on_behalf_of(kAna);
  EXPECT_THAT(direct->Aggregate(request),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("on_behalf_of")));
  request.set_on_behalf_of("spiffe://fedshare.test/org/partner-b/analyst/eve");
  EXPECT_THAT(direct->Aggregate(request),
              StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
  const v1::ListAuditResponse log = AuditJson("partner-a");
  ASSERT_EQ(log.entries_size(), 1);
  EXPECT_EQ(log.entries(0).on_behalf_of(), "spiffe://fedshare.test/org/partner-b/analyst/eve");
}

TEST_F(AuditE2eTest, AuditShowFiltersByCallerDecisionAndTime) {
  AskAll(ana_, kAnaSql);  // partner-a: 0 answered for ana
  AskAll(bob_, kBobSql);  // partner-a: 1 answered for bob
  // partner-b's node asks partner-a directly: no agreement, refused.
  auto direct =
      Connect(nodes_["partner-a"].peer_address, node_ids_["partner-b"], kTrustDomain, "partner-a");
  ASSERT_NE(direct, nullptr);
  ASSERT_OK_AND_ASSIGN(v1::AggregateQuery query, ParseSql(kBobSql));
  EXPECT_THAT(direct->Aggregate(query),
              StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));

  using ::testing::ElementsAre;
  const v1::ListAuditResponse all = AuditJson("partner-a");
  ASSERT_THAT(Indexes(all), ElementsAre(0, 1, 2));
  EXPECT_THAT(Indexes(AuditJson("partner-a", {"--caller", kBob})), ElementsAre(1));
  EXPECT_THAT(Indexes(AuditJson("partner-a", {"--caller", kAna})), ElementsAre(0));
  EXPECT_THAT(Indexes(AuditJson("partner-a", {"--caller", "foundation"})), ElementsAre(0, 1));
  EXPECT_THAT(Indexes(AuditJson("partner-a", {"--caller", "partner-b"})), ElementsAre(2));
  EXPECT_THAT(Indexes(AuditJson("partner-a", {"--decision", "refused"})), ElementsAre(2));
  EXPECT_THAT(Indexes(AuditJson("partner-a", {"--decision", "answered", "--caller", "foundation"})),
              ElementsAre(0, 1));

  // Time: split at the last entry's time; every entry lands on one side.
  const absl::Time last = absl::FromUnixMillis(all.entries(2).time_unix_ms());
  std::vector<uint64_t> before, from;
  for (const v1::AuditEntry& e : all.entries()) {
    (absl::FromUnixMillis(e.time_unix_ms()) < last ? before : from).push_back(e.index());
  }
  const std::string at = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", last, absl::UTCTimeZone());
  EXPECT_EQ(Indexes(AuditJson("partner-a", {"--since", at})), from);
  EXPECT_EQ(Indexes(AuditJson("partner-a", {"--until", at})), before);
  EXPECT_TRUE(AuditJson("partner-a", {"--since", "2100-01-01"}).entries().empty());
  EXPECT_TRUE(AuditJson("partner-a", {"--until", "2000-01-01"}).entries().empty());
  EXPECT_THAT(Indexes(AuditJson("partner-a", {"--since", "2000-01-01", "--until", "2100-01-01"})),
              ElementsAre(0, 1, 2));

  // Paging: --limit with a filter still finds the matches further on.
  EXPECT_THAT(Indexes(AuditJson("partner-a", {"--caller", "partner-b", "--limit", "1"})),
              ElementsAre(2));

  const ProcessOutcome bad = Cli({"--node", nodes_["partner-a"].local_address, "--identity",
                                  operators_["partner-a"], "audit", "show", "--decision", "maybe"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("answered, refused, failed or cancelled"));
}

}  // namespace
}  // namespace fedshare::testing
