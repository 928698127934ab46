// Issue 4, adversarial: each defence of exact-mode disclosure control and of
// the agreements, through a real node and the real client. Each test fails
// if its defence is removed.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/audit/audit_log.h"
#include "node/common/status_matchers.h"
#include "node/common/time_util.h"
#include "node/server/config.h"
#include "node/server/node.h"
#include "node/storage/fault_injector.h"
#include "node/storage/storage.h"
#include "query/sql.h"
#include "testing/partner_fixture.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "fedshare.test";

// 100 subjects, one record each:
//   program literacy: 9 subjects, numeracy: 10, mentoring: 40, employment: 41;
//   region: 3 employment subjects in "central", the rest north/south/east/west;
//   sessions_attended 10 each, except one numeracy subject with 200, so a
//   numeracy sum is dominated by one person.
std::string Records() {
  std::string csv =
      "participant_id,program,region,cohort_year,age,completed,outcome_score,sessions_attended,"
      "income\n";
  const char* regions[] = {"north", "south", "east", "west"};
  for (int i = 0; i < 100; ++i) {
    std::string program = i < 9    ? "literacy"
                          : i < 19 ? "numeracy"
                          : i < 59 ? "mentoring"
                                   : "employment";
    std::string region = (i >= 59 && i < 62) ? "central" : regions[i % 4];
    int sessions = i == 9 ? 200 : 10;
    absl::StrAppend(&csv, "s", 1000 + i, ",", program, ",", region, ",", 2019 + i % 4, ",",
                    18 + i % 50, ",", i % 3 == 0 ? "true" : "false", ",", i % 100, ",", sessions,
                    ",", 1000 * i, "\n");
  }
  return csv;
}

std::string Consents() {
  std::string csv = "subject,purpose,event,time,valid_until,scope\n";
  for (int i = 0; i < 100; ++i) {
    absl::StrAppend(&csv, "s", 1000 + i, ",program-evaluation,GIVEN,2026-01-01T00:00:00Z,,*\n");
  }
  return csv;
}

v1::Agreement RestrictedAgreement() {
  v1::Agreement a = OpenAgreement("foundation-eval", "foundation");
  a.clear_aggregates();
  for (v1::AggregateKind k : {v1::COUNT, v1::COUNT_SUBJECTS, v1::SUM, v1::AVG}) a.add_aggregates(k);
  a.clear_group_fields();
  for (const char* f : {"program", "region", "completed"}) a.add_group_fields(f);
  return a;
}

class DisclosureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = partner_.Config();
    *config_.add_agreements() = RestrictedAgreement();
    v1::Agreement expired = OpenAgreement("old-agreement", "old-peer");
    expired.set_valid_until("2020-01-01");
    *config_.add_agreements() = expired;
    ASSERT_OK(server::ValidateNodeConfig(config_));
    StartNode();
    ASSERT_OK(partner_.Ingest(Records(), 100));
    ASSERT_OK(partner_.ImportConsent(Consents()));
  }

  void StartNode() {
    server::NodeOptions options;
    options.fault_injector = &faults_;
    ASSERT_OK(partner_.Start(config_, options));
  }

  absl::StatusOr<v1::AggregateResult> Ask(const std::string& sql) {
    absl::StatusOr<v1::AggregateQuery> query = ParseSql(sql);
    if (!query.ok()) return query.status();
    return partner_.peer().Aggregate(*query);
  }

  // The released value of the first aggregate in the cell whose first key is `key`.
  static std::optional<double> Released(const v1::AggregateResult& r, const std::string& key) {
    for (const v1::Cell& c : r.cells()) {
      if (!c.withheld() && c.key_size() > 0 && c.key(0).string_value() == key) {
        return c.values(0).value();
      }
    }
    return std::nullopt;
  }

  static std::string WithheldRule(const v1::AggregateResult& r, const std::string& key) {
    for (const v1::Cell& c : r.cells()) {
      if (c.withheld() && c.key_size() > 0 && c.key(0).string_value() == key) {
        return c.withheld_rule();
      }
    }
    return "";
  }

  TempDir tmp_{"disclosure"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  storage::FaultInjector faults_;  // outlives the node
  PartnerFixture partner_{tmp_, pki_};
  v1::NodeConfig config_;
};

constexpr char kPurpose[] = " PURPOSE 'program-evaluation'";

TEST_F(DisclosureTest, CellWithKMinusOneSubjectsIsWithheldAndKIsReleased) {
  ASSERT_OK_AND_ASSIGN(auto nine, Ask(absl::StrCat("SELECT COUNT(*) FROM program_outcomes "
                                                   "WHERE program = 'literacy'",
                                                   kPurpose)));
  ASSERT_EQ(nine.cells_size(), 0);
  EXPECT_EQ(nine.unlisted_withheld_cells(), 1);
  ASSERT_EQ(nine.withholdings_size(), 1);
  EXPECT_EQ(nine.withholdings(0).rule(), "min-subjects");
  EXPECT_THAT(nine.DebugString(), ::testing::Not(HasSubstr("value: 9")));

  ASSERT_OK_AND_ASSIGN(auto ten, Ask(absl::StrCat("SELECT COUNT(*) FROM program_outcomes "
                                                  "WHERE program = 'numeracy'",
                                                  kPurpose)));
  ASSERT_EQ(ten.cells_size(), 1);
  EXPECT_FALSE(ten.cells(0).withheld());
  EXPECT_EQ(ten.cells(0).values(0).value(), 10);
}

TEST_F(DisclosureTest, WithheldCellCannotBeRecoveredFromTheTotal) {
  ASSERT_OK_AND_ASSIGN(auto total,
                       Ask(absl::StrCat("SELECT COUNT(*) FROM program_outcomes", kPurpose)));
  ASSERT_EQ(total.cells_size(), 1);
  EXPECT_EQ(total.cells(0).values(0).value(), 100);

  ASSERT_OK_AND_ASSIGN(auto by_program,
                       Ask(absl::StrCat("SELECT program, COUNT(*) FROM program_outcomes "
                                        "GROUP BY program",
                                        kPurpose)));
  // literacy (9) is withheld by the threshold, and the next smallest cell too,
  // so total minus the released cells is the sum of two cells, not literacy.
  EXPECT_EQ(WithheldRule(by_program, "literacy"), "min-subjects");
  EXPECT_EQ(WithheldRule(by_program, "numeracy"), "secondary-suppression");
  double released = 0;
  for (const v1::Cell& c : by_program.cells()) {
    if (!c.withheld()) released += c.values(0).value();
  }
  EXPECT_EQ(released, 81);
  EXPECT_NE(total.cells(0).values(0).value() - released, 9);
}

TEST_F(DisclosureTest, DominatedCellCannotBeRecoveredFromTheTotal) {
  ASSERT_OK_AND_ASSIGN(auto by_program,
                       Ask(absl::StrCat("SELECT program, SUM(sessions_attended) FROM "
                                        "program_outcomes GROUP BY program",
                                        kPurpose)));
  // numeracy (one person holds 200 of 290) is withheld for dominance and
  // literacy for size; pooled they are still dominated (200 of 380), so the
  // next smallest cell is withheld too and the total cannot isolate them.
  EXPECT_EQ(WithheldRule(by_program, "numeracy"), "dominance");
  EXPECT_EQ(WithheldRule(by_program, "literacy"), "min-subjects");
  EXPECT_EQ(WithheldRule(by_program, "mentoring"), "secondary-suppression");
  EXPECT_EQ(Released(by_program, "employment"), 410);
}

TEST_F(DisclosureTest, PredicateRemovingFewerThanKSubjectsIsRefused) {
  ASSERT_OK_AND_ASSIGN(auto all, Ask(absl::StrCat("SELECT COUNT(*) FROM program_outcomes "
                                                  "WHERE program = 'employment'",
                                                  kPurpose)));
  EXPECT_EQ(all.cells(0).values(0).value(), 41);
  // central holds 3 employment subjects: the difference would single them out.
  EXPECT_THAT(Ask(absl::StrCat("SELECT COUNT(*) FROM program_outcomes WHERE program = "
                               "'employment' AND region != 'central'",
                               kPurpose)),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("predicate-removal"), HasSubstr("region"))));
  // Removing no one, or at least k, is fine.
  EXPECT_OK(Ask(absl::StrCat("SELECT COUNT(*) FROM program_outcomes WHERE program = "
                             "'employment' AND region != 'west'",
                             kPurpose))
                .status());
}

// The engine counts the owners of dropped records only up to k (the figures
// above k do not change the verdict): at exactly k - 1 the filter is refused,
// at exactly k it is not. The agreement's k is the default, 10.
TEST_F(DisclosureTest, PredicateRemovalIsDecidedAtExactlyK) {
  // literacy holds 9 subjects.
  EXPECT_THAT(Ask(absl::StrCat("SELECT COUNT(*) FROM program_outcomes WHERE program != 'literacy'",
                               kPurpose)),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("predicate-removal"), HasSubstr("program"))));
  // numeracy holds 10.
  ASSERT_OK_AND_ASSIGN(auto without_numeracy,
                       Ask(absl::StrCat("SELECT COUNT(*) FROM program_outcomes WHERE program != "
                                        "'numeracy'",
                                        kPurpose)));
  EXPECT_EQ(without_numeracy.cells(0).values(0).value(), 90);
}

TEST_F(DisclosureTest, NeighbouringRangeBoundsSnapToTheSameAnswer) {
  ASSERT_OK_AND_ASSIGN(auto a, Ask(absl::StrCat("SELECT COUNT(*) FROM program_outcomes "
                                                "WHERE age <= 40",
                                                kPurpose)));
  ASSERT_OK_AND_ASSIGN(auto b, Ask(absl::StrCat("SELECT COUNT(*) FROM program_outcomes "
                                                "WHERE age <= 41",
                                                kPurpose)));
  ASSERT_EQ(a.cells_size(), 1);
  ASSERT_EQ(b.cells_size(), 1);
  EXPECT_EQ(a.cells(0).values(0).value(), b.cells(0).values(0).value());
  EXPECT_EQ(a.applied_where(0).DebugString(), b.applied_where(0).DebugString());
  // Ages 18..39 on the grid of 5: age < 40.
  int expected = 0;
  for (int i = 0; i < 100; ++i) expected += (18 + i % 50) < 40;
  EXPECT_EQ(a.cells(0).values(0).value(), expected);
}

TEST_F(DisclosureTest, SumDominatedByOneSubjectIsWithheld) {
  ASSERT_OK_AND_ASSIGN(auto dominated,
                       Ask(absl::StrCat("SELECT SUM(sessions_attended) FROM program_outcomes "
                                        "WHERE program = 'numeracy'",
                                        kPurpose)));
  EXPECT_EQ(dominated.cells_size(), 0);
  ASSERT_EQ(dominated.withholdings_size(), 1);
  EXPECT_EQ(dominated.withholdings(0).rule(), "dominance");

  ASSERT_OK_AND_ASSIGN(auto spread,
                       Ask(absl::StrCat("SELECT SUM(sessions_attended) FROM program_outcomes "
                                        "WHERE program = 'mentoring'",
                                        kPurpose)));
  ASSERT_EQ(spread.cells_size(), 1);
  EXPECT_EQ(spread.cells(0).values(0).value(), 400);
}

TEST_F(DisclosureTest, WithdrawnConsentRemovesTheSubjectFromTheNextAnswer) {
  const std::string sql =
      absl::StrCat("SELECT COUNT(DISTINCT subject) FROM program_outcomes", kPurpose);
  ASSERT_OK_AND_ASSIGN(auto before, Ask(sql));
  EXPECT_EQ(before.cells(0).values(0).value(), 100);
  client::NodeClient& admin = partner_.admin();
  std::string withdrawal = absl::StrCat(
      "subject,purpose,event,time,valid_until,scope\n", "s1050,program-evaluation,WITHDRAWN,",
      fedshare::FormatTime(absl::Now() - absl::Minutes(1)), ",,*\n");
  ASSERT_OK_AND_ASSIGN(auto imported, admin.ImportConsent(withdrawal));
  ASSERT_EQ(imported.events_new(), 1) << imported.DebugString();
  ASSERT_OK_AND_ASSIGN(auto after, Ask(sql));
  EXPECT_EQ(after.cells(0).values(0).value(), 99);
}

TEST_F(DisclosureTest, QuestionsOutsideTheAgreementAreRefusedNamingTheRule) {
  EXPECT_THAT(Ask("SELECT COUNT(*) FROM program_outcomes PURPOSE 'marketing'"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("foundation-eval"), HasSubstr("purpose"))));
  EXPECT_THAT(Ask(absl::StrCat("SELECT cohort_year, COUNT(*) FROM program_outcomes "
                               "GROUP BY cohort_year",
                               kPurpose)),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("foundation-eval"), HasSubstr("group-field"))));
  EXPECT_THAT(Ask(absl::StrCat("SELECT HISTOGRAM(outcome_score, 0, 100, 4) FROM "
                               "program_outcomes",
                               kPurpose)),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("foundation-eval"), HasSubstr("aggregate"))));
  EXPECT_THAT(Ask(absl::StrCat("SELECT SUM(income) FROM program_outcomes", kPurpose)),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("measure-field")));
  // A purpose below the agreed one is covered; one above it is not.
  EXPECT_THAT(Ask("SELECT COUNT(*) FROM program_outcomes PURPOSE 'research'"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("purpose")));
}

TEST_F(DisclosureTest, ExpiredAgreementRefuses) {
  std::string old_peer = pki_.Issue("old-peer", Role::kNode);
  auto client = Connect(partner_.node().peer_address(), old_peer, kTrustDomain);
  ASSERT_NE(client, nullptr);
  ASSERT_OK_AND_ASSIGN(auto query,
                       ParseSql(absl::StrCat("SELECT COUNT(*) FROM program_outcomes", kPurpose)));
  EXPECT_THAT(client->Aggregate(query),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("old-agreement"), HasSubstr("validity"))));
  // A node with no agreement at all meets the default deny.
  std::string stranger = pki_.Issue("stranger", Role::kNode);
  auto other = Connect(partner_.node().peer_address(), stranger, kTrustDomain);
  ASSERT_NE(other, nullptr);
  EXPECT_THAT(other->Aggregate(query),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("default-deny")));
}

TEST_F(DisclosureTest, RepeatingAQuestionPastTheLimitIsRefused) {
  const std::string sql = absl::StrCat("SELECT COUNT(*) FROM program_outcomes", kPurpose);
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK(Ask(sql).status());
  }
  EXPECT_THAT(Ask(sql), StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("repeat-limit")));
}

TEST_F(DisclosureTest, EveryAnswerAndRefusalIsAuditedWithAReceipt) {
  ASSERT_OK_AND_ASSIGN(auto answered,
                       Ask(absl::StrCat("SELECT COUNT(*) FROM program_outcomes", kPurpose)));
  EXPECT_FALSE(Ask("SELECT COUNT(*) FROM program_outcomes PURPOSE 'marketing'").ok());
  client::NodeClient& admin = partner_.admin();
  ASSERT_OK_AND_ASSIGN(v1::ListAuditResponse log, admin.ListAudit(0, 100));
  ASSERT_EQ(log.entries_size(), 2);
  EXPECT_TRUE(log.chain_valid()) << log.chain_error();
  EXPECT_EQ(log.entries(0).decision(), v1::AuditEntry::ANSWERED);
  EXPECT_EQ(log.entries(0).caller(), "spiffe://fedshare.test/org/foundation/node");
  EXPECT_EQ(answered.receipt().audit_index(), 0u);
  EXPECT_EQ(answered.receipt().entry_hash(), audit::EntryHash(log.entries(0)));
  EXPECT_EQ(log.entries(1).decision(), v1::AuditEntry::REFUSED);
  EXPECT_EQ(log.entries(1).rule(), "purpose");
  // No subject id appears anywhere in the log.
  for (const v1::AuditEntry& e : log.entries()) {
    EXPECT_THAT(e.DebugString(), ::testing::Not(HasSubstr("s10"))) << e.DebugString();
  }
}

TEST_F(DisclosureTest, UnwritableAuditStoreFailsTheQuestionAndReleasesNothing) {
  ASSERT_OK(Ask(absl::StrCat("SELECT COUNT(*) FROM program_outcomes", kPurpose)).status());
  faults_.SetFailWrites(true);
  absl::StatusOr<v1::AggregateResult> result = Ask(
      absl::StrCat("SELECT program, COUNT(*) FROM program_outcomes GROUP BY program", kPurpose));
  faults_.SetFailWrites(false);
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  EXPECT_GT(faults_.injected_failures(), 0);
}

TEST_F(DisclosureTest, AlteredAuditLeafIsDetectedAndTheNodeAnswersNothing) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(Ask(absl::StrCat("SELECT COUNT(*) FROM program_outcomes WHERE cohort_year >= ",
                               2019 + i, kPurpose))
                  .status());
  }
  partner_.Stop();
  {
    // Rewrite leaf 1 in the store, as someone with the disk might.
    auto storage = storage::Storage::Create(config_.data_dir(), storage::StorageOptions());
    ASSERT_OK(storage.status());
    std::string key = std::string("l") + std::string(7, '\0') + std::string(1, '\1');
    ASSERT_OK_AND_ASSIGN(auto value, (*storage)->Get(storage::ColumnFamily::kAudit, key));
    ASSERT_TRUE(value.has_value());
    ASSERT_OK_AND_ASSIGN(v1::AuditEntry entry, audit::DecodeLeaf(*value));
    entry.set_decision(v1::AuditEntry::REFUSED);
    ASSERT_OK((*storage)->Put(storage::ColumnFamily::kAudit, key, audit::EncodeLeaf(entry)));
  }
  StartNode();
  client::NodeClient& admin = partner_.admin();
  ASSERT_OK_AND_ASSIGN(v1::ListAuditResponse log, admin.ListAudit(0, 100));
  EXPECT_FALSE(log.chain_valid());
  EXPECT_THAT(log.chain_error(), HasSubstr("leaf 1"));
  ASSERT_OK_AND_ASSIGN(v1::StatusResponse status, admin.Status());
  EXPECT_THAT(status.audit_error(), HasSubstr("leaf 1"));
  EXPECT_THAT(Ask(absl::StrCat("SELECT COUNT(*) FROM program_outcomes", kPurpose)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("audit log unavailable")));
}

}  // namespace
}  // namespace fedshare::testing
