// Issue 16 through the real programs: a foundation node and three partner
// nodes as fedshare-node processes, the analyst's fedshare CLI, and the node's
// own SQL parse. The node parses `sql` with the CLI's grammar, answering and
// failing exactly as the CLI's parser does for the SQL test corpus; an answer
// saved with `fedshare query --save` is printed again by `fedshare show`, with
// every node stopped, byte for byte as the live query printed it.
#include <signal.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/synthetic.h"
#include "fedshare/v1/saved_answer.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "policy/refusal.h"
#include "query/sql.h"
#include "query/sql_corpus.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using google::protobuf::util::MessageDifferencer;
using identity::Role;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kTrustDomain[] = "fedshare.test";

// Withheld and partial cells: partner-2's data is small, so it withholds
// cells partner-1 releases; partner-3 refuses the purpose.
constexpr char kByProgramAndYear[] =
    "SELECT program, cohort_year, COUNT(*), AVG(outcome_score) FROM program_outcomes "
    "WHERE cohort_year >= 2020 GROUP BY program, cohort_year PURPOSE 'program-evaluation'";
// Asked directly of partner-1 (the repeat limit allows 5 of each question a
// day, and the federated tests ask kHistogram 4 times).
constexpr char kDirect[] =
    "SELECT program, COUNT(*), HISTOGRAM(sessions_attended, 0, 200, 4) FROM program_outcomes "
    "GROUP BY program PURPOSE 'program-evaluation'";
constexpr char kHistogram[] =
    "SELECT program, HISTOGRAM(outcome_score, 0, 100, 5) FROM program_outcomes "
    "GROUP BY program PURPOSE 'program-evaluation'";

class AnalystAnswersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    struct Partner {
      std::string org;
      std::string purpose;  // the one purpose its agreement with foundation allows
      int64_t rows;
    };
    const std::vector<Partner> partners = {{"partner-1", "program-evaluation", 900},
                                           {"partner-2", "program-evaluation", 240},
                                           {"partner-3", "marketing", 300}};
    uint64_t seed = 1;
    for (const Partner& p : partners) {
      std::string node_id = pki_.Issue(p.org, Role::kNode);
      std::string op = pki_.Issue(p.org, Role::kOperator, "op");
      v1::NodeConfig config =
          BaseNodeConfig(p.org, kTrustDomain, tmp_.Sub(p.org + "-data"), node_id);
      *config.add_datasets() = ProgramOutcomesSchema();
      v1::Agreement a = OpenAgreement("foundation-" + p.purpose, "foundation");
      a.clear_purposes();
      a.add_purposes(p.purpose);
      *config.add_agreements() = a;
      auto started = StartNodeProcess(config, tmp_.Sub(p.org + ".textproto"));
      ASSERT_OK(started.status());
      synthetic::Options options;
      options.seed = seed++;
      options.rows = p.rows;
      auto admin = Connect(started->local_address, op, kTrustDomain, p.org);
      ASSERT_NE(admin, nullptr);
      ASSERT_OK_AND_ASSIGN(auto ingested, admin->Ingest("program_outcomes", v1::CSV, false,
                                                        synthetic::RecordsCsv(options)));
      ASSERT_EQ(ingested.rows_written(), p.rows) << ingested.DebugString();
      ASSERT_OK(admin->ImportConsent(synthetic::ConsentCsv(options)).status());
      nodes_[p.org] = std::move(started).value();
    }
    foundation_id_ = pki_.Issue("foundation", Role::kNode);
    analyst_ = pki_.Issue("foundation", Role::kAnalyst, "ana");
    v1::NodeConfig config =
        BaseNodeConfig("foundation", kTrustDomain, tmp_.Sub("foundation-data"), foundation_id_);
    config.set_peer_deadline_ms(5000);
    for (const auto& [org, node] : nodes_) {
      v1::PeerConfig* peer = config.add_peers();
      peer->set_org_id(org);
      peer->set_address(node.peer_address);
    }
    auto foundation = StartNodeProcess(config, tmp_.Sub("foundation.textproto"));
    ASSERT_OK(foundation.status());
    foundation_ = std::move(foundation).value();
  }

  absl::StatusOr<v1::FederatedAggregateResponse> Ask(const v1::FederatedAggregateRequest& request) {
    auto client = Connect(foundation_.local_address, analyst_, kTrustDomain, "foundation");
    if (client == nullptr) return absl::InternalError("no client");
    return client->FederatedAggregate(request);
  }

  ProcessOutcome Cli(const std::vector<std::string>& args) {
    return RunCliAs(tmp_, analyst_, foundation_.local_address, args);
  }

  void StopEveryNode() {
    for (auto& [org, node] : nodes_) {
      node.process->Signal(SIGTERM);
      node.process->Wait();
    }
    foundation_.process->Signal(SIGTERM);
    foundation_.process->Wait();
  }

  // What differs between two answers to the same question: the audit entry
  // and the time of answering.
  static void Scrub(v1::FederatedAggregateResponse& r) {
    r.mutable_combined()->clear_receipt();
    r.mutable_combined()->clear_answered_at_unix_ms();
    for (v1::AggregateResult& p : *r.mutable_partners()) {
      p.clear_receipt();
      p.clear_answered_at_unix_ms();
    }
    // Each asking gets its own audit entries, so its own receipts.
    for (v1::PartnerCoverage& c : *r.mutable_coverage()) c.clear_receipt();
  }

  TempDir tmp_{"analyst_answers"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  std::map<std::string, NodeProcess> nodes_;
  NodeProcess foundation_;
  std::string foundation_id_;  // the foundation node's identity
  std::string analyst_;
};

TEST_F(AnalystAnswersTest, NodeSqlParseFailsLikeTheCliForTheCorpus) {
  for (const SqlCorpusCase& c : SqlErrorCorpus()) {
    SCOPED_TRACE(c.name);
    const absl::Status cli = ParseSql(c.sql).status();
    ASSERT_FALSE(cli.ok());
    v1::FederatedAggregateRequest request;
    request.set_sql(c.sql);
    request.set_all_peers(true);
    absl::StatusOr<v1::FederatedAggregateResponse> node = Ask(request);
    ASSERT_FALSE(node.ok());
    EXPECT_EQ(node.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(node.status().message(), cli.message());
    std::optional<google::rpc::ErrorInfo> node_info = policy::RefusalOf(node.status());
    std::optional<google::rpc::ErrorInfo> cli_info = policy::RefusalOf(cli);
    ASSERT_TRUE(node_info.has_value());
    ASSERT_TRUE(cli_info.has_value());
    EXPECT_EQ(node_info->reason(), kSqlSyntaxReason);
    EXPECT_TRUE(MessageDifferencer::Equals(*node_info, *cli_info))
        << node_info->ShortDebugString() << " vs " << cli_info->ShortDebugString();
  }
}

TEST_F(AnalystAnswersTest, NodeSqlParseAnswersLikeTheCliForTheCorpus) {
  std::vector<std::string> questions = {kByProgramAndYear, kHistogram};
  for (const SqlCorpusCase& c : SqlValidCorpus()) questions.push_back(c.sql);
  int answered_with_cells = 0;
  for (const std::string& sql : questions) {
    SCOPED_TRACE(sql);
    ASSERT_OK_AND_ASSIGN(v1::AggregateQuery parsed, ParseSql(sql));
    parsed.set_query_id("q-parity");
    v1::FederatedAggregateRequest structured;
    structured.set_all_peers(true);
    *structured.mutable_query() = parsed;
    v1::FederatedAggregateRequest text;
    text.set_all_peers(true);
    text.set_sql(sql);
    text.mutable_query()->set_query_id("q-parity");

    absl::StatusOr<v1::FederatedAggregateResponse> by_cli = Ask(structured);
    absl::StatusOr<v1::FederatedAggregateResponse> by_node = Ask(text);
    ASSERT_EQ(by_cli.status(), by_node.status());
    if (!by_cli.ok()) continue;
    Scrub(*by_cli);
    Scrub(*by_node);
    EXPECT_TRUE(MessageDifferencer::Equals(*by_cli, *by_node))
        << by_cli->ShortDebugString() << "\nvs\n"
        << by_node->ShortDebugString();
    answered_with_cells += by_node->combined().cells_size() > 0;
  }
  // Not vacuous: the real questions were answered with figures.
  EXPECT_GE(answered_with_cells, 2);

  // A request names its question once.
  v1::FederatedAggregateRequest both;
  both.set_all_peers(true);
  both.set_sql(kHistogram);
  ASSERT_OK_AND_ASSIGN(*both.mutable_query(), ParseSql(kHistogram));
  EXPECT_THAT(Ask(both).status(), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("both sql and a structured query")));
}

TEST_F(AnalystAnswersTest, CoverageCarriesThePartnersRefusal) {
  v1::FederatedAggregateRequest request;
  request.set_all_peers(true);
  request.set_sql(kHistogram);
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse response, Ask(request));
  int refused = 0;
  for (const v1::PartnerCoverage& c : response.coverage()) {
    if (c.org_id() != "partner-3") {
      EXPECT_FALSE(c.has_refusal()) << c.ShortDebugString();
      continue;
    }
    ++refused;
    EXPECT_EQ(c.state(), v1::PartnerCoverage::REFUSED);
    EXPECT_EQ(c.refusal().reason(), "purpose");
    EXPECT_EQ(c.refusal().domain(), "fedshare");
    EXPECT_EQ(c.refusal().metadata().at("agreement"), "foundation-marketing");
  }
  EXPECT_EQ(refused, 1);
}

TEST_F(AnalystAnswersTest, ShowPrintsTheSavedAnswerAgainWithEveryNodeStopped) {
  struct Saved {
    std::string sql, output, file, live;
  };
  std::vector<Saved> saved;
  for (const char* sql : {kByProgramAndYear, kHistogram}) {
    for (const char* output : {"table", "csv", "json", "chart"}) {
      Saved s{sql, output, tmp_.Sub(absl::StrCat("answer-", saved.size(), ".json")), ""};
      ProcessOutcome live = Cli({"query", "--sql", sql, "--all-peers", "--min-coverage", "2",
                                 "--output", output, "--save", s.file});
      ASSERT_EQ(live.exit_code, 0) << live.err;
      s.live = live.out;
      saved.push_back(std::move(s));
    }
  }
  // The answers have what the saved form must keep: refusals in coverage,
  // withheld and partial cells, histogram bins with their edges.
  const std::string& table = saved[0].live;
  EXPECT_THAT(table, HasSubstr("partner-3  refused"));
  EXPECT_THAT(table, HasSubstr("withheld by min-subjects"));
  EXPECT_THAT(table, HasSubstr("* partial"));
  EXPECT_THAT(table, HasSubstr("receipt: audit entry"));
  EXPECT_THAT(saved[3].live, HasSubstr("withheld by min-subjects"));  // the chart
  EXPECT_THAT(saved[3].live, HasSubstr(" *\n"));
  EXPECT_THAT(saved[4].live, HasSubstr("[0,20) "));
  EXPECT_THAT(saved[5].live, HasSubstr("\"histogram(outcome_score) [80,100)\""));

  // Asked directly of one partner's peer listener (as the foundation's node), too.
  for (const char* output : {"table", "csv", "json", "chart"}) {
    Saved s{kDirect, output, tmp_.Sub(absl::StrCat("direct-", output, ".json")), ""};
    ProcessOutcome live =
        RunCliAs(tmp_, foundation_id_, nodes_["partner-1"].peer_address,
                 {"query", "--sql", kDirect, "--output", output, "--save", s.file});
    ASSERT_EQ(live.exit_code, 0) << live.err;
    s.live = live.out;
    saved.push_back(std::move(s));
  }
  EXPECT_THAT(saved.back().live, HasSubstr("histogram(sessions_attended): literacy\n  [0,50) "));

  StopEveryNode();
  for (const Saved& s : saved) {
    SCOPED_TRACE(absl::StrCat(s.output, " ", s.sql));
    ProcessOutcome shown = RunCli(tmp_, {"show", s.file, "--output", s.output});
    ASSERT_EQ(shown.exit_code, 0) << shown.err;
    EXPECT_EQ(shown.out, s.live);
  }
  // Any format from any saved file, with the question's histogram edges.
  ProcessOutcome csv = RunCli(tmp_, {"show", saved[4].file, "--output", "csv"});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_EQ(csv.out, saved[5].live);
  ProcessOutcome bad = RunCli(tmp_, {"show", tmp_.Write("not-saved.json", "{\"x\": 1}")});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("format ''"));
}

// A foundation of thousands of partners: past 20 asked, the table names the
// partners that did not answer and counts the others; --all-partners lists
// every one. The saved answer of this federation, its coverage grown to 25
// partners with copies of the real entries, is printed by the real CLI.
TEST_F(AnalystAnswersTest, ATableOfManyPartnersNamesTheMissingAndCountsTheRest) {
  const std::string file = tmp_.Sub("many.json");
  ProcessOutcome live = Cli(
      {"query", "--sql", kByProgramAndYear, "--all-peers", "--min-coverage", "2", "--save", file});
  ASSERT_EQ(live.exit_code, 0) << live.err;
  ASSERT_OK_AND_ASSIGN(std::string json, ReadFile(file));
  v1::SavedAnswer saved;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &saved).ok());
  v1::FederatedAggregateResponse& answer = *saved.mutable_federated();
  v1::PartnerCoverage answered;
  for (const v1::PartnerCoverage& c : answer.coverage()) {
    if (c.state() == v1::PartnerCoverage::ANSWERED) answered = c;
  }
  ASSERT_FALSE(answered.org_id().empty());
  for (int i = 0; answer.coverage_size() < 25; ++i) {
    v1::PartnerCoverage* c = answer.add_coverage();
    *c = answered;
    c->set_org_id(absl::StrCat("partner-copy-", i));
  }
  std::string grown;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(saved, &grown).ok());
  const std::string grown_file = tmp_.Write("many-grown.json", grown);

  ProcessOutcome shown = RunCli(tmp_, {"show", grown_file});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_THAT(shown.out, HasSubstr("coverage: 24 of 25 partners answered"));
  EXPECT_THAT(shown.out, HasSubstr("partner-3  refused"));
  EXPECT_THAT(shown.out, HasSubstr("24 partner(s) answered, not listed one by one"));
  EXPECT_THAT(shown.out, HasSubstr("combined:"));
  EXPECT_THAT(shown.out, Not(HasSubstr("partner-copy-7")));
  ProcessOutcome all = RunCli(tmp_, {"show", grown_file, "--all-partners"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  for (int i = 0; i < 22; ++i) EXPECT_THAT(all.out, HasSubstr(absl::StrCat("partner-copy-", i)));
  EXPECT_THAT(all.out, Not(HasSubstr("not listed one by one")));
  // A live question takes the flag too (three partners: listed either way).
  ProcessOutcome flagged = Cli({"query", "--sql", kByProgramAndYear, "--all-peers",
                                "--min-coverage", "2", "--all-partners"});
  ASSERT_EQ(flagged.exit_code, 0) << flagged.err;
  EXPECT_THAT(flagged.out, HasSubstr("partner-3  refused"));
}

}  // namespace
}  // namespace fedshare::testing
