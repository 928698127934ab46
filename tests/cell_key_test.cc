// Issue 15, cell-key perturbation, through a real node and the real client:
// under an EXACT agreement with perturbation CELL_KEY, released counts are
// perturbed by a fixed function of the records they count, so
//   - two questions whose cells hold the same records get the same figures,
//     and the same people the same COUNT(DISTINCT subject);
//   - the record-level differencing pair of issue 8 (a filter that drops one
//     record of a person who stays in the cell), which exact mode refuses, is
//     answered but no longer gives the dropped record exactly;
//   - sums stay exact and keep exact mode's predicate-removal rule.
// And the attacker against a weakened rule: with keys over distinct people
// only, the same pair would give the record exactly, in every cell.
#include "policy/cell_key.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "query/sql.h"
#include "testing/partner_fixture.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "fedshare.test";
constexpr char kPurpose[] = " PURPOSE 'program-evaluation'";
constexpr int kYears = 40;          // cohort years 1980..2019, one cell each
constexpr int kPeoplePerYear = 12;  // k = 10: every cell is released

// Per cohort year, 12 people with one record in north; the first of them also
// has a record in south. `WHERE region != 'south'` drops exactly that record
// from each cell, and its owner stays in the cell.
std::string Rows(std::set<std::string>* subjects) {
  std::string csv = kProgramOutcomesCsvHeader;
  for (int y = 0; y < kYears; ++y) {
    for (int i = 0; i < kPeoplePerYear; ++i) {
      const std::string id = absl::StrCat("y", y, "p", i);
      subjects->insert(id);
      absl::StrAppend(&csv, id, ",mentoring,north,", 1980 + y, ",30,false,50,10,0\n");
      if (i == 0) absl::StrAppend(&csv, id, ",mentoring,south,", 1980 + y, ",30,false,50,20,0\n");
    }
  }
  return csv;
}
constexpr int64_t kRows = kYears * (kPeoplePerYear + 1);

class CellKeyTest : public ::testing::Test {
 protected:
  void Start(bool cell_key) {
    v1::NodeConfig config = partner_.Config();
    v1::Agreement agreement = OpenAgreement("foundation-eval", "foundation");
    if (cell_key) agreement.mutable_disclosure()->set_perturbation(v1::Disclosure::CELL_KEY);
    *config.add_agreements() = agreement;
    ASSERT_OK(partner_.Start(config));
    std::set<std::string> subjects;
    const std::string csv = Rows(&subjects);
    ASSERT_OK(partner_.Load(csv, kRows, subjects));
  }

  absl::StatusOr<v1::AggregateResult> Ask(const std::string& sql) {
    absl::StatusOr<v1::AggregateQuery> query = ParseSql(sql + kPurpose);
    if (!query.ok()) return query.status();
    return partner_.peer().Aggregate(*query);
  }

  // Per cohort year, the released figure of aggregate `a`.
  static std::vector<double> ByYear(const v1::AggregateResult& r, int a) {
    std::vector<double> out(kYears, -1);
    for (const v1::Cell& cell : r.cells()) {
      EXPECT_FALSE(cell.withheld());
      const int64_t y = cell.key(0).int_value() - 1980;
      if (y >= 0 && y < kYears) out[y] = cell.values(a).value();
    }
    return out;
  }

  TempDir tmp_{"cell-key"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  PartnerFixture partner_{tmp_, pki_};
};

const char kAll[] =
    "SELECT cohort_year, COUNT(*), COUNT(DISTINCT subject) FROM program_outcomes "
    "GROUP BY cohort_year";
const char kWithoutSouth[] =
    "SELECT cohort_year, COUNT(*), COUNT(DISTINCT subject) FROM program_outcomes "
    "WHERE region != 'south' GROUP BY cohort_year";

TEST_F(CellKeyTest, ExactModeRefusesTheRecordLevelDifferencingPair) {
  Start(/*cell_key=*/false);
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult all, Ask(kAll));
  EXPECT_EQ(all.count_precision(), v1::AggregateResult::EXACT);
  EXPECT_THAT(ByYear(all, 0), ::testing::Each(13));
  EXPECT_THAT(Ask(kWithoutSouth),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("predicate-removal")));
}

TEST_F(CellKeyTest, TheDifferencingPairNoLongerGivesTheDroppedRecord) {
  Start(/*cell_key=*/true);
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult all, Ask(kAll));
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult without, Ask(kWithoutSouth));
  EXPECT_EQ(all.count_precision(), v1::AggregateResult::PERTURBED);
  EXPECT_EQ(without.count_precision(), v1::AggregateResult::PERTURBED);
  ASSERT_EQ(all.cells_size(), kYears);
  ASSERT_EQ(without.cells_size(), kYears);
  const std::vector<double> records_all = ByYear(all, 0);
  const std::vector<double> records_without = ByYear(without, 0);
  const std::vector<double> people_all = ByYear(all, 1);
  const std::vector<double> people_without = ByYear(without, 1);
  int exact_differences = 0;
  int perturbed_cells = 0;
  for (int y = 0; y < kYears; ++y) {
    // The default p-table moves counts of 5 and more by at most 2.
    EXPECT_NEAR(records_all[y], 13, 2) << y;
    EXPECT_NEAR(records_without[y], 12, 2) << y;
    if (records_all[y] - records_without[y] == 1) ++exact_differences;
    if (records_all[y] != 13) ++perturbed_cells;
    // The same 12 people in both answers: the same COUNT(DISTINCT).
    EXPECT_EQ(people_all[y], people_without[y]) << y;
  }
  // Each cell's two keys differ by the dropped record's key, so its two
  // perturbations are independent draws from the p-table row: equal with
  // probability sum p^2 = 0.33 (16, 48, 128, 48, 16 of 256). Over 40 cells,
  // 30 or more exact differences has probability below 1e-9, and so has no
  // perturbed cell at all (0.5^40).
  EXPECT_LT(exact_differences, 30);
  EXPECT_GT(perturbed_cells, 0);
  EXPECT_THAT(client::FormatResult(all, client::OutputFormat::kTable),
              HasSubstr("counts perturbed"));
  EXPECT_THAT(client::FormatResult(all, client::OutputFormat::kCsv),
              HasSubstr("# counts perturbed"));
  EXPECT_THAT(client::FormatResult(all, client::OutputFormat::kJson),
              HasSubstr("\"count_precision\":\"PERTURBED\""));
}

TEST_F(CellKeyTest, TheSameRecordsGetTheSameFiguresInAnyQuestion) {
  Start(/*cell_key=*/true);
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult all, Ask(kAll));
  const std::vector<double> records = ByYear(all, 0);
  const std::vector<double> people = ByYear(all, 1);
  for (int y : {0, 7, 23, 39}) {
    // One cell asked on its own, by another filter that selects the same
    // records, and grouped differently: the same records, the same noise.
    ASSERT_OK_AND_ASSIGN(v1::AggregateResult one,
                         Ask(absl::StrCat("SELECT COUNT(*), COUNT(DISTINCT subject) FROM "
                                          "program_outcomes WHERE cohort_year = ",
                                          1980 + y)));
    ASSERT_EQ(one.cells_size(), 1);
    EXPECT_EQ(one.cells(0).values(0).value(), records[y]) << y;
    EXPECT_EQ(one.cells(0).values(1).value(), people[y]) << y;
    ASSERT_OK_AND_ASSIGN(
        v1::AggregateResult grouped,
        Ask(absl::StrCat("SELECT program, COUNT(*) FROM program_outcomes WHERE cohort_year >= ",
                         1980 + y, " AND cohort_year <= ", 1980 + y, " GROUP BY program")));
    ASSERT_EQ(grouped.cells_size(), 1);
    EXPECT_EQ(grouped.cells(0).values(0).value(), records[y]) << y;
  }
}

TEST_F(CellKeyTest, SumsStayExactAndKeepThePredicateRemovalRule) {
  Start(/*cell_key=*/true);
  ASSERT_OK_AND_ASSIGN(
      v1::AggregateResult sums,
      Ask("SELECT cohort_year, SUM(sessions_attended) FROM program_outcomes GROUP BY cohort_year"));
  EXPECT_THAT(ByYear(sums, 0), ::testing::Each(12 * 10 + 20));
  EXPECT_THAT(Ask("SELECT cohort_year, SUM(sessions_attended) FROM program_outcomes "
                  "WHERE region != 'south' GROUP BY cohort_year"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("predicate-removal")));
}

// The attacker against a weakened rule: keys summed over the cell's distinct
// people (not its records) are equal for the pair, and the default p-table's
// rows for 12 and 13 records are the same, so every difference would be the
// dropped record exactly.
TEST(CellKeyAttackerTest, KeysOverPeopleOnlyWouldGiveTheDroppedRecordExactly) {
  const policy::PTable& table = policy::DefaultPTable();
  for (uint32_t key = 0; key < table.table_size(); ++key) {
    EXPECT_EQ(table.Perturb(13, key) - table.Perturb(12, key), 1) << key;
  }
}

}  // namespace
}  // namespace fedshare::testing
