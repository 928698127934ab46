// Issue 15: differential privacy through real nodes and the real client.
// Every released value lies on its grid with an interval; a single-subject
// group is left out; a heavy subject moves a count by its bound only; the ε
// budget is refused past its end, never overspent by concurrent questions,
// and survives SIGKILL; a repeat is free and identical, a changed question or
// changed data costs; a dry run spends nothing.
#include <signal.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/server/config.h"
#include "node/server/node.h"
#include "policy/refusal.h"
#include "query/sql.h"
#include "testing/partner_fixture.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "fedshare.test";
constexpr double kEpsilon = 1.0;  // per question
constexpr double kBudget = 4.0;   // four questions per window

// 400 subjects with one record each, 100 per region north/south/east/west
// and spread over the four programs; s5000, alone in region central; and
// s9999 with 1,000 records in literacy/north.
std::string Records(int extra_subjects = 0) {
  std::string csv = kProgramOutcomesCsvHeader;
  const char* programs[] = {"literacy", "numeracy", "mentoring", "employment"};
  const char* regions[] = {"north", "south", "east", "west"};
  auto row = [&](const std::string& id, const char* program, const char* region, int i) {
    absl::StrAppend(&csv, id, ",", program, ",", region, ",", 2019 + i % 4, ",", 18 + i % 50, ",",
                    i % 3 == 0 ? "true" : "false", ",", i % 100, ",", 10, ",", 1000 * i, "\n");
  };
  for (int i = 0; i < 400 + extra_subjects; ++i) {
    row(absl::StrCat("s", 1000 + i), programs[i % 4], regions[(i / 4) % 4], i);
  }
  row("s5000", "numeracy", "central", 7);
  for (int i = 0; i < 1000; ++i) row("s9999", "literacy", "north", 99);
  return csv;
}

std::string Consents(int extra_subjects = 0) {
  std::string csv = "subject,purpose,event,time,valid_until,scope\n";
  auto give = [&](const std::string& id) {
    absl::StrAppend(&csv, id, ",program-evaluation,GIVEN,2026-01-01T00:00:00Z,,*\n");
  };
  for (int i = 0; i < 400 + extra_subjects; ++i) give(absl::StrCat("s", 1000 + i));
  give("s5000");
  give("s9999");
  return csv;
}

v1::Agreement DpAgreement() {
  v1::Agreement a = OpenAgreement("foundation-dp", "foundation");
  v1::Disclosure* d = a.mutable_disclosure();
  d->set_mode(v1::Disclosure::DIFFERENTIAL_PRIVACY);
  d->set_max_records_per_subject(1);
  d->mutable_dp()->set_epsilon_per_question(kEpsilon);
  d->mutable_dp()->set_budget_epsilon(kBudget);
  d->mutable_dp()->set_budget_window_seconds(3600);
  d->mutable_dp()->set_max_groups_per_subject(1);
  return a;
}

std::string Question(int n) {
  return absl::StrCat(
      "SELECT program, COUNT(*), SUM(outcome_score) FROM program_outcomes WHERE cohort_year >= ",
      1900 + n, " GROUP BY program PURPOSE 'program-evaluation'");
}

double Left(const absl::StatusOr<v1::AggregateResult>& r) {
  return r.ok() ? r->privacy_budget().epsilon_left() : -1;
}

class DpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = partner_.Config();
    *config_.add_agreements() = DpAgreement();
    // Concurrency and refusal limits out of the way: the ledger alone decides.
    config_.mutable_limits()->set_max_calls_per_caller(64);
    config_.mutable_limits()->set_refusals_per_window(1000);
    config_.set_max_concurrent_questions(64);
    ASSERT_OK(server::ValidateNodeConfig(config_));
  }

  void StartInProcess() {
    ASSERT_OK(partner_.Start(config_));
    peer_address_ = partner_.node().peer_address();
    local_address_ = partner_.node().local_address();
  }

  void Load(int extra_subjects = 0) {
    auto admin = Connect(local_address_, partner_.operator_identity(), kTrustDomain);
    ASSERT_NE(admin, nullptr);
    ASSERT_OK_AND_ASSIGN(
        v1::IngestResponse ingested,
        admin->Ingest("program_outcomes", v1::CSV, false, Records(extra_subjects)));
    ASSERT_EQ(ingested.rows_written(), 1401 + extra_subjects) << ingested.DebugString();
    ASSERT_OK_AND_ASSIGN(v1::ConsentImportResponse consented,
                         admin->ImportConsent(Consents(extra_subjects)));
    ASSERT_EQ(consented.events_rejected(), 0) << consented.DebugString();
  }

  std::unique_ptr<client::NodeClient> Foundation() {
    return Connect(peer_address_, partner_.foundation_identity(), kTrustDomain, "partner-a");
  }

  absl::StatusOr<v1::AggregateResult> Ask(const std::string& sql, bool dry_run = false) {
    absl::StatusOr<v1::AggregateQuery> query = ParseSql(sql);
    if (!query.ok()) return query.status();
    auto peer = Foundation();
    if (peer == nullptr) return absl::UnavailableError("cannot connect");
    v1::AggregateRequest request;
    *request.mutable_query() = *query;
    request.set_dry_run(dry_run);
    return peer->Aggregate(request);
  }

  static const v1::Cell* CellOf(const v1::AggregateResult& r, const std::string& key) {
    for (const v1::Cell& c : r.cells()) {
      if (c.key_size() > 0 && c.key(0).string_value() == key) return &c;
    }
    return nullptr;
  }

  TempDir tmp_{"dp"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  PartnerFixture partner_{tmp_, pki_};
  v1::NodeConfig config_;
  std::string peer_address_, local_address_;
};

TEST_F(DpTest, ValuesLieOnTheirGridWithIntervalsAndNoExactFigure) {
  StartInProcess();
  Load();
  ASSERT_OK_AND_ASSIGN(
      v1::AggregateResult r,
      Ask("SELECT program, COUNT(*), SUM(outcome_score), AVG(outcome_score), "
          "HISTOGRAM(outcome_score, 0, 100, 4) FROM program_outcomes GROUP BY program "
          "PURPOSE 'program-evaluation'"));
  // program is public with declared values: every program is a cell.
  ASSERT_EQ(r.cells_size(), 4) << r.DebugString();
  for (const v1::Cell& cell : r.cells()) {
    ASSERT_EQ(cell.values_size(), 4);
    for (int a : {0, 1}) {
      const v1::AggregateValue& v = cell.values(a);
      ASSERT_TRUE(v.has_noise()) << v.DebugString();
      ASSERT_GT(v.noise().granularity(), 0);
      EXPECT_EQ(std::fmod(v.value(), v.noise().granularity()), 0) << v.DebugString();
      EXPECT_LE(v.noise().ci_low(), v.value());
      EXPECT_GE(v.noise().ci_high(), v.value());
      EXPECT_GT(v.noise().laplace_scale(), 0);
    }
    EXPECT_EQ(std::fmod(cell.values(0).value(), 1.0), 0);
    // The sufficient statistics are the noisy figures, never exact ones.
    EXPECT_EQ(cell.values(0).count(), cell.values(0).value());
    EXPECT_EQ(cell.values(1).sum(), cell.values(1).value());
    EXPECT_EQ(cell.values(3).bin_noise_size(), 4);
  }
  // literacy holds 100 one-record subjects and s9999's 1,000 records: with
  // one record per subject counted, the true bounded count is 101, and the
  // noise (scale 4) is far below the 1,000 the heavy subject would add.
  const v1::Cell* literacy = CellOf(r, "literacy");
  ASSERT_NE(literacy, nullptr);
  EXPECT_LT(std::fabs(literacy->values(0).value() - 101), 200) << literacy->DebugString();
  EXPECT_DOUBLE_EQ(r.privacy_budget().epsilon_spent(), kEpsilon);
  EXPECT_DOUBLE_EQ(r.privacy_budget().epsilon_left(), kBudget - kEpsilon);
  EXPECT_EQ(r.privacy_budget().delta(), 0);  // public keys: no partition selection

  // The audit entry records ε spent.
  auto admin = Connect(local_address_, partner_.operator_identity(), kTrustDomain);
  ASSERT_OK_AND_ASSIGN(v1::ListAuditResponse audit, admin->ListAudit(r.receipt().audit_index(), 1));
  ASSERT_EQ(audit.entries_size(), 1);
  EXPECT_EQ(audit.entries(0).decision(), v1::AuditEntry::ANSWERED);
  EXPECT_DOUBLE_EQ(audit.entries(0).epsilon_spent(), kEpsilon);
}

constexpr char kCountByRegion[] =
    "SELECT region, COUNT(*) FROM program_outcomes GROUP BY region PURPOSE 'program-evaluation'";

TEST_F(DpTest, SingleSubjectGroupIsLeftOut) {
  StartInProcess();
  Load();
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult r, Ask(kCountByRegion));
  // region is not public: groups pass partition selection (δ = 1e-6).
  EXPECT_EQ(CellOf(r, "central"), nullptr) << r.DebugString();
  for (const char* region : {"north", "south", "east", "west"}) {
    EXPECT_NE(CellOf(r, region), nullptr) << region << " has 100 subjects";
  }
  EXPECT_EQ(r.unlisted_withheld_cells(), 0);  // how many were left out is not said
  EXPECT_DOUBLE_EQ(r.privacy_budget().delta(), 1e-6);
}

// The attacker knows the four regions of the 400 and asks whether anyone is
// in a fifth: with limits.max_answer_cells at 4, a refusal of GROUP BY region
// would say that s5000's group exists, which partition selection hides.
TEST_F(DpTest, TheCellBoundDoesNotTellWhetherAHiddenGroupExists) {
  config_.mutable_limits()->set_max_answer_cells(4);
  StartInProcess();
  Load();
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult r, Ask(kCountByRegion));
  EXPECT_EQ(CellOf(r, "central"), nullptr) << r.DebugString();
  EXPECT_EQ(r.cells_size(), 4);
  EXPECT_EQ(r.unlisted_withheld_cells(), 0);
}

TEST_F(DpTest, QuestionPastTheBudgetIsRefusedWithEpsilonLeft) {
  StartInProcess();
  Load();
  for (int i = 0; i < 4; ++i) {
    ASSERT_OK_AND_ASSIGN(v1::AggregateResult r, Ask(Question(i)));
    EXPECT_DOUBLE_EQ(r.privacy_budget().epsilon_left(), kBudget - (i + 1) * kEpsilon);
  }
  absl::StatusOr<v1::AggregateResult> refused = Ask(Question(4));
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("rule 'dp-budget'"));
  EXPECT_THAT(refused.status().message(), HasSubstr("is left"));
  std::optional<google::rpc::ErrorInfo> info = policy::RefusalOf(refused.status());
  ASSERT_TRUE(info.has_value()) << refused.status();
  EXPECT_EQ(info->reason(), "dp-budget");
  EXPECT_EQ(info->metadata().at("epsilon_left"), "0");
  EXPECT_EQ(info->metadata().at("epsilon_cost"), "1");
  EXPECT_EQ(info->metadata().at("agreement"), "foundation-dp");
  // The CLI says so too.
  ProcessOutcome cli = RunCliAs(tmp_, partner_.foundation_identity(), peer_address_,
                                {"query", "--sql", Question(5)});
  EXPECT_NE(cli.exit_code, 0);
  EXPECT_THAT(cli.err, HasSubstr("rule dp-budget; agreement foundation-dp; epsilon left 0, "
                                 "question costs 1; ask again in"));
  // It renews when the first spend leaves the one-hour window.
  ASSERT_TRUE(info->metadata().contains("retry_after_seconds"));
  const int retry = std::stoi(info->metadata().at("retry_after_seconds"));
  EXPECT_GT(retry, 3000);
  EXPECT_LE(retry, 3600);
}

// A question its memory budget refuses is refused before the ledger is
// touched: told so even with the budget spent (a wait would not help it), in
// a dry run too, and it spends nothing.
TEST_F(DpTest, AQuestionTooLargeForItsMemoryIsToldSoBeforeTheBudget) {
  // Question(n), 5 groups: about 105 KB kept. One group per record of the
  // dataset (an INT field can take as many): over 400 KB.
  config_.mutable_limits()->set_query_memory_budget_bytes(256 << 10);
  StartInProcess();
  Load();
  const std::string too_large =
      "SELECT cohort_year, COUNT(*) FROM program_outcomes GROUP BY cohort_year PURPOSE "
      "'program-evaluation'";
  auto expect_memory_refusal = [](const absl::StatusOr<v1::AggregateResult>& r) {
    EXPECT_THAT(r.status(),
                StatusIs(absl::StatusCode::kResourceExhausted,
                         HasSubstr("limits.query_memory_budget_bytes = 262144 allows")));
    std::optional<google::rpc::ErrorInfo> info = policy::RefusalOf(r.status());
    ASSERT_TRUE(info.has_value()) << r.status();
    EXPECT_EQ(info->reason(), "execution");
  };
  expect_memory_refusal(Ask(too_large));
  expect_memory_refusal(Ask(too_large, /*dry_run=*/true));
  for (int i = 0; i < 4; ++i) {
    ASSERT_OK_AND_ASSIGN(v1::AggregateResult r, Ask(Question(i)));
    EXPECT_DOUBLE_EQ(Left(r), kBudget - (i + 1) * kEpsilon);
  }
  EXPECT_THAT(Ask(Question(4)).status(),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("rule 'dp-budget'")));
  expect_memory_refusal(Ask(too_large));
  expect_memory_refusal(Ask(too_large, /*dry_run=*/true));

  // Through the CLI's dry run: refused, saying what to change.
  ProcessOutcome cli = RunCliAs(tmp_, partner_.foundation_identity(), peer_address_,
                                {"query", "--sql", too_large, "--dry-run"});
  EXPECT_NE(cli.exit_code, 0);
  EXPECT_THAT(cli.err, HasSubstr("Raise limits.query_memory_budget_bytes"));
}

TEST_F(DpTest, RepeatIsFreeAndIdenticalChangedQuestionOrDataCosts) {
  StartInProcess();
  Load();
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult first, Ask(Question(0)));
  EXPECT_DOUBLE_EQ(Left(first), 3);
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult again, Ask(Question(0)));
  EXPECT_TRUE(again.privacy_budget().repeat());
  EXPECT_EQ(again.privacy_budget().epsilon_spent(), 0);
  EXPECT_DOUBLE_EQ(Left(again), 3);
  ASSERT_EQ(again.cells_size(), first.cells_size());
  for (int i = 0; i < first.cells_size(); ++i) {
    EXPECT_EQ(again.cells(i).SerializeAsString(), first.cells(i).SerializeAsString());
  }
  // The same question snapped alike (cohort_year >= 1900 is every record
  // either way) is the same applied question... a different one costs.
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult changed, Ask(Question(0) + " "));
  EXPECT_DOUBLE_EQ(Left(changed), 3) << "whitespace does not change the question";
  ASSERT_OK_AND_ASSIGN(changed,
                       Ask("SELECT program, COUNT(*) FROM program_outcomes GROUP BY program "
                           "PURPOSE 'program-evaluation'"));
  EXPECT_FALSE(changed.privacy_budget().repeat());
  EXPECT_DOUBLE_EQ(Left(changed), 2);

  // Changed data: the same question costs again.
  auto admin = Connect(local_address_, partner_.operator_identity(), kTrustDomain);
  ASSERT_OK(admin
                ->Ingest("program_outcomes", v1::CSV, false,
                         std::string(kProgramOutcomesCsvHeader) +
                             "s7777,literacy,north,2020,30,true,50,10,0\n")
                .status());
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult after, Ask(Question(0)));
  EXPECT_FALSE(after.privacy_budget().repeat());
  EXPECT_DOUBLE_EQ(Left(after), 1);
}

TEST_F(DpTest, DryRunShowsTheCostAndSpendsNothing) {
  StartInProcess();
  Load();
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult dry, Ask(Question(0), /*dry_run=*/true));
  EXPECT_TRUE(dry.privacy_budget().dry_run());
  EXPECT_EQ(dry.cells_size(), 0);
  EXPECT_DOUBLE_EQ(dry.privacy_budget().epsilon_cost(), kEpsilon);
  EXPECT_DOUBLE_EQ(dry.privacy_budget().epsilon_left(), kBudget);
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult real, Ask(Question(0)));
  EXPECT_DOUBLE_EQ(Left(real), kBudget - kEpsilon);

  // Through the CLI, straight to the peer listener as foundation's node.
  ProcessOutcome cli = RunCliAs(tmp_, partner_.foundation_identity(), peer_address_,
                                {"query", "--sql", Question(1), "--dry-run"});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_THAT(cli.out,
              HasSubstr("dry run: this question would cost epsilon 1; epsilon left 3 of 4"));
  cli = RunCliAs(tmp_, partner_.foundation_identity(), peer_address_,
                 {"query", "--sql", Question(1)});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_THAT(cli.out, HasSubstr("95% interval"));
  EXPECT_THAT(cli.out, HasSubstr("differential privacy: epsilon spent 1; epsilon left 2 of 4"));

  auto admin = Connect(local_address_, partner_.operator_identity(), kTrustDomain);
  ASSERT_OK_AND_ASSIGN(v1::ListAuditResponse audit,
                       admin->ListAudit(dry.receipt().audit_index(), 1));
  ASSERT_EQ(audit.entries_size(), 1);
  EXPECT_EQ(audit.entries(0).decision(), v1::AuditEntry::DRY_RUN);
  EXPECT_EQ(audit.entries(0).epsilon_spent(), 0);
}

TEST_F(DpTest, ThirtyTwoConcurrentQuestionsNeverOverspend) {
  StartInProcess();
  Load();
  constexpr int kThreads = 32;
  std::atomic<int> answered{0}, refused{0}, other{0};
  std::atomic<double> spent_by_answers{0};
  absl::Mutex mu;
  std::string others;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      absl::StatusOr<v1::AggregateResult> r = Ask(Question(t));
      if (r.ok()) {
        ++answered;
        double s = spent_by_answers.load();
        while (
            !spent_by_answers.compare_exchange_weak(s, s + r->privacy_budget().epsilon_spent())) {
        }
      } else if (r.status().code() == absl::StatusCode::kResourceExhausted &&
                 absl::StrContains(r.status().message(), "dp-budget")) {
        ++refused;
      } else {
        ++other;
        absl::MutexLock lock(&mu);
        absl::StrAppend(&others, r.status().ToString(), "\n");
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(other.load(), 0) << others;
  EXPECT_EQ(answered.load(), 4);
  EXPECT_EQ(refused.load(), kThreads - 4);
  EXPECT_DOUBLE_EQ(spent_by_answers.load(), kBudget);
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult dry, Ask(Question(99), /*dry_run=*/true));
  EXPECT_EQ(dry.privacy_budget().epsilon_left(), 0);
}

TEST_F(DpTest, SpentBudgetSurvivesSigkillAndRestart) {
  ASSERT_OK_AND_ASSIGN(NodeProcess node, StartNodeProcess(config_, tmp_.Sub("node.textproto")));
  peer_address_ = node.peer_address;
  local_address_ = node.local_address;
  Load();
  ASSERT_OK(Ask(Question(0)).status());
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult second, Ask(Question(1)));
  EXPECT_DOUBLE_EQ(Left(second), 2);
  node.process->Signal(SIGKILL);

  ASSERT_OK_AND_ASSIGN(node, StartNodeProcess(config_, tmp_.Sub("node.textproto")));
  peer_address_ = node.peer_address;
  local_address_ = node.local_address;
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult dry, Ask(Question(2), /*dry_run=*/true));
  EXPECT_DOUBLE_EQ(dry.privacy_budget().epsilon_left(), 2);
  // The repeat is still recognised after the restart: free and identical.
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult repeat, Ask(Question(1)));
  EXPECT_TRUE(repeat.privacy_budget().repeat());
  ASSERT_EQ(repeat.cells_size(), second.cells_size());
  for (int i = 0; i < second.cells_size(); ++i) {
    EXPECT_EQ(repeat.cells(i).SerializeAsString(), second.cells(i).SerializeAsString());
  }
  EXPECT_DOUBLE_EQ(Left(repeat), 2);
}

}  // namespace
}  // namespace fedshare::testing
