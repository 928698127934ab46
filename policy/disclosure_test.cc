#include "policy/disclosure.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"

namespace fedshare::policy {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

v1::AggregateQuery Query(std::vector<v1::AggregateKind> kinds) {
  v1::AggregateQuery q;
  q.set_dataset("d");
  q.set_purpose("p");
  for (v1::AggregateKind k : kinds) {
    v1::Aggregate* a = q.add_aggregates();
    a->set_kind(k);
    if (k != v1::COUNT && k != v1::COUNT_SUBJECTS) a->set_field("m");
    if (k == v1::HISTOGRAM) {
      a->set_lo(0);
      a->set_hi(10);
      a->set_bins(5);
    }
  }
  return q;
}

// Fresh subject ordinals, so that cells made by the helpers below hold
// distinct people unless a test says otherwise.
uint32_t next_ordinal = 1;

void NamePeople(CellStats& c, size_t n_aggs) {
  c.subject_ordinals.clear();
  for (int64_t i = 0; i < c.subjects; ++i) c.subject_ordinals.push_back(next_ordinal++);
  c.subject_contributions.assign(c.subject_ordinals.size() * n_aggs, 0.0);
}

// Distinct people per histogram bin.
void NameBinPeople(CellStats& c) {
  c.bin_subject_ordinals.clear();
  for (const std::vector<int64_t>& bins : c.bin_subjects) {
    std::vector<std::vector<uint32_t>> named;
    for (int64_t n : bins) {
      named.emplace_back();
      for (int64_t i = 0; i < n; ++i) named.back().push_back(next_ordinal++);
    }
    c.bin_subject_ordinals.push_back(std::move(named));
  }
}

CellStats Count(int64_t subjects) {
  CellStats c;
  c.subjects = subjects;
  c.top_contributions = {{}};
  c.abs_totals = {0};
  c.bin_subjects = {{}};
  NamePeople(c, 1);
  return c;
}

// One aggregate with the given top contributions and total; the rest of the
// total is spread evenly over the other subjects.
CellStats Measured(int64_t subjects, std::vector<double> top, double total) {
  CellStats c;
  c.subjects = subjects;
  c.top_contributions = {top};
  c.abs_totals = {total};
  c.bin_subjects = {{}};
  NamePeople(c, 1);
  double rest = total;
  for (size_t i = 0; i < top.size() && i < c.subject_contributions.size(); ++i) {
    c.subject_contributions[i] = top[i];
    rest -= top[i];
  }
  const size_t others =
      c.subject_contributions.size() - std::min(top.size(), c.subject_contributions.size());
  for (size_t i = top.size(); i < c.subject_contributions.size(); ++i) {
    c.subject_contributions[i] = rest / static_cast<double>(others);
  }
  return c;
}

std::vector<bool> Released(const std::vector<CellVerdict>& v) {
  std::vector<bool> out;
  for (const CellVerdict& c : v) out.push_back(c.released);
  return out;
}

std::vector<std::string> Rules(const std::vector<CellVerdict>& v) {
  std::vector<std::string> out;
  for (const CellVerdict& c : v) out.push_back(c.rule);
  return out;
}

TEST(DisclosureTest, MinSubjectsThreshold) {
  const DisclosureParams p;  // k = 10
  const std::vector<CellVerdict> v = ApplyCellRules(p, Query({v1::COUNT}), {Count(9)});
  ASSERT_EQ(v.size(), 1u);
  EXPECT_FALSE(v[0].released);
  EXPECT_EQ(v[0].rule, kRuleMinSubjects);
  const std::vector<CellVerdict> ok = ApplyCellRules(p, Query({v1::COUNT}), {Count(10)});
  EXPECT_TRUE(ok[0].released);
  EXPECT_EQ(ok[0].rule, "");

  DisclosureParams k3;
  k3.min_subjects = 3;
  EXPECT_FALSE(ApplyCellRules(k3, Query({v1::COUNT}), {Count(2)})[0].released);
  EXPECT_TRUE(ApplyCellRules(k3, Query({v1::COUNT}), {Count(3)})[0].released);
}

TEST(DisclosureTest, DominanceOneFiftyTriggers) {
  const DisclosureParams p;
  // Largest contributor holds 51% of the total.
  auto v = ApplyCellRules(p, Query({v1::SUM}), {Measured(20, {51, 5, 4}, 100)});
  EXPECT_FALSE(v[0].released);
  EXPECT_EQ(v[0].rule, kRuleDominance);
  // Exactly 50% is allowed ("exceed").
  v = ApplyCellRules(p, Query({v1::SUM}), {Measured(20, {50, 10, 5}, 100)});
  EXPECT_TRUE(v[0].released) << v[0].rule;
}

TEST(DisclosureTest, DominanceTwoSixtySevenTriggers) {
  const DisclosureParams p;
  // 40 + 28 = 68% > 67%, while the largest alone (40%) passes (1,50).
  auto v = ApplyCellRules(p, Query({v1::AVG}), {Measured(20, {40, 28, 2}, 100)});
  EXPECT_FALSE(v[0].released);
  EXPECT_EQ(v[0].rule, kRuleDominance);
  v = ApplyCellRules(p, Query({v1::AVG}), {Measured(20, {40, 27, 2}, 100)});
  EXPECT_TRUE(v[0].released);
}

TEST(DisclosureTest, DominanceAppliesToSumAvgStddevVarianceOnly) {
  const DisclosureParams p;
  const CellStats dominated = Measured(20, {90, 1}, 100);
  for (v1::AggregateKind k : {v1::SUM, v1::AVG, v1::STDDEV, v1::VARIANCE}) {
    EXPECT_FALSE(ApplyCellRules(p, Query({k}), {dominated})[0].released) << k;
  }
  for (v1::AggregateKind k : {v1::COUNT, v1::COUNT_SUBJECTS}) {
    EXPECT_TRUE(ApplyCellRules(p, Query({k}), {dominated})[0].released) << k;
  }
  CellStats hist = dominated;
  hist.bin_subjects = {{20, 0, 0, 0, 0}};
  EXPECT_TRUE(ApplyCellRules(p, Query({v1::HISTOGRAM}), {hist})[0].released);
}

TEST(DisclosureTest, DominanceUsesEachAggregatesOwnFigures) {
  const DisclosureParams p;
  CellStats c;
  c.subjects = 20;
  c.top_contributions = {{}, {5, 5}, {80, 1}};
  c.abs_totals = {0, 100, 100};
  c.bin_subjects = {{}, {}, {}};
  auto v = ApplyCellRules(p, Query({v1::COUNT, v1::SUM, v1::AVG}), {c});
  EXPECT_FALSE(v[0].released);
  EXPECT_EQ(v[0].rule, kRuleDominance);
  c.top_contributions[2] = {10, 10};
  EXPECT_TRUE(ApplyCellRules(p, Query({v1::COUNT, v1::SUM, v1::AVG}), {c})[0].released);
}

TEST(DisclosureTest, CustomDominanceRules) {
  DisclosureParams p;
  p.dominance = {{3, 90.0}};
  EXPECT_TRUE(ApplyCellRules(p, Query({v1::SUM}), {Measured(20, {60, 20, 5}, 100)})[0].released);
  EXPECT_FALSE(ApplyCellRules(p, Query({v1::SUM}), {Measured(20, {60, 20, 11}, 100)})[0].released);
}

TEST(DisclosureTest, MissingFiguresWithhold) {
  const DisclosureParams p;
  CellStats c;
  c.subjects = 20;
  EXPECT_FALSE(ApplyCellRules(p, Query({v1::SUM}), {c})[0].released);
}

TEST(DisclosureTest, SecondarySuppressionPicksSmallestCellsUntilK) {
  const DisclosureParams p;  // k = 10
  // One cell of 4 is withheld; the smallest released cell (12) is withheld next,
  // then the total 16 >= 10 stops it.
  auto v =
      ApplyCellRules(p, Query({v1::COUNT}), {Count(50), Count(4), Count(30), Count(12), Count(12)});
  EXPECT_THAT(Released(v), ElementsAre(true, false, true, false, true));
  EXPECT_THAT(Rules(v), ElementsAre("", "min-subjects", "", "secondary-suppression", ""));
}

TEST(DisclosureTest, SecondarySuppressionNotNeededWhenWithheldTotalReachesK) {
  const DisclosureParams p;
  auto v = ApplyCellRules(p, Query({v1::COUNT}), {Count(50), Count(6), Count(5), Count(30)});
  EXPECT_THAT(Released(v), ElementsAre(true, false, false, true));
  EXPECT_THAT(Rules(v), ElementsAre("", "min-subjects", "min-subjects", ""));
}

TEST(DisclosureTest, DominatedCellIsComplementedUntilThePoolIsNotDominated) {
  const DisclosureParams p;
  // Alone, the dominated cell (90 of 100) would be its own pool and a separate
  // total minus the released cells would reveal it; with the smallest other
  // cell pooled, 90 is 45% of 200 and passes (1,50) and (2,67).
  auto v =
      ApplyCellRules(p, Query({v1::SUM}),
                     {Measured(20, {90}, 100), Measured(11, {1}, 100), Measured(30, {1}, 100)});
  EXPECT_THAT(Released(v), ElementsAre(false, false, true));
  EXPECT_THAT(Rules(v), ElementsAre("dominance", "secondary-suppression", ""));
  // Counts carry no dominance: a pool of k subjects is enough.
  v = ApplyCellRules(p, Query({v1::COUNT}), {Count(20), Count(11), Count(30)});
  EXPECT_THAT(Released(v), ElementsAre(true, true, true));
}

TEST(DisclosureTest, SecondarySuppressionWithholdsEverythingIfItCannotReachK) {
  DisclosureParams p;
  p.min_subjects = 10;
  auto v = ApplyCellRules(p, Query({v1::COUNT}), {Count(2), Count(3), Count(10)});
  // 2 + 3 = 5; adding the 10 gives 15 >= 10.
  EXPECT_THAT(Released(v), ElementsAre(false, false, false));
  EXPECT_THAT(Rules(v), ElementsAre("min-subjects", "min-subjects", "secondary-suppression"));
  v = ApplyCellRules(p, Query({v1::COUNT}), {Count(2), Count(3)});
  EXPECT_THAT(Released(v), ElementsAre(false, false));
}

TEST(DisclosureTest, SecondarySuppressionTiesGoToTheFirstCell) {
  const DisclosureParams p;
  auto v = ApplyCellRules(p, Query({v1::COUNT}), {Count(20), Count(15), Count(1), Count(15)});
  EXPECT_THAT(Released(v), ElementsAre(true, false, false, true));
}

TEST(DisclosureTest, NoSuppressionWhenAllCellsAreSafe) {
  const DisclosureParams p;
  auto v = ApplyCellRules(p, Query({v1::COUNT}), {Count(10), Count(11)});
  EXPECT_THAT(Released(v), ElementsAre(true, true));
  EXPECT_TRUE(ApplyCellRules(p, Query({v1::COUNT}), {}).empty());
}

TEST(DisclosureTest, HistogramBinsBelowKAreWithheld) {
  DisclosureParams p;
  p.min_subjects = 5;
  CellStats c;
  c.subjects = 40;
  c.top_contributions = {{}, {}};
  c.abs_totals = {0, 0};
  c.bin_subjects = {{}, {0, 3, 12, 4, 21}};
  NameBinPeople(c);
  auto v = ApplyCellRules(p, Query({v1::COUNT, v1::HISTOGRAM}), {c});
  ASSERT_TRUE(v[0].released);
  ASSERT_EQ(v[0].withheld_bins.size(), 2u);
  EXPECT_THAT(v[0].withheld_bins[0], IsEmpty());
  // Bins 1 and 3 (3 and 4 subjects) hold 7 >= 5 together; empty bins stay released.
  EXPECT_THAT(v[0].withheld_bins[1], ElementsAre(1, 3));
}

TEST(DisclosureTest, SingleSmallHistogramBinGetsAComplement) {
  DisclosureParams p;
  p.min_subjects = 5;
  CellStats c;
  c.subjects = 40;
  c.top_contributions = {{}};
  c.abs_totals = {0};
  c.bin_subjects = {{2, 30, 6, 0, 9}};
  NameBinPeople(c);
  auto v = ApplyCellRules(p, Query({v1::HISTOGRAM}), {c});
  ASSERT_TRUE(v[0].released);
  // Bin 0 alone could be recovered from the cell's total; the smallest other
  // non-empty bin (6) is withheld with it.
  EXPECT_THAT(v[0].withheld_bins[0], ElementsAre(0, 2));
  c.bin_subjects = {{5, 30, 6, 0, 9}};
  NameBinPeople(c);
  EXPECT_THAT(ApplyCellRules(p, Query({v1::HISTOGRAM}), {c})[0].withheld_bins[0], IsEmpty());
}

TEST(DisclosureTest, WithheldCellsListNoBins) {
  const DisclosureParams p;
  CellStats c;
  c.subjects = 3;
  c.top_contributions = {{}};
  c.abs_totals = {0};
  c.bin_subjects = {{1, 1, 1, 0, 0}};
  auto v = ApplyCellRules(p, Query({v1::HISTOGRAM}), {c});
  EXPECT_FALSE(v[0].released);
  EXPECT_THAT(v[0].withheld_bins, IsEmpty());
}

// Leak 2 of issue 8: two withheld cells of 6 and 7 people share 4 people, so
// together they hold 9 people, not 13: the pool is below k and a further
// cell is withheld.
TEST(DisclosureTest, PoolsCountDistinctPeopleNotPersonCells) {
  const DisclosureParams p;
  CellStats a = Count(6), b = Count(7);
  for (size_t i = 0; i < 4; ++i) b.subject_ordinals[i] = a.subject_ordinals[i];
  std::sort(b.subject_ordinals.begin(), b.subject_ordinals.end());
  auto v = ApplyCellRules(p, Query({v1::COUNT}), {Count(50), a, b, Count(30)});
  EXPECT_THAT(Released(v), ElementsAre(true, false, false, false));
  EXPECT_THAT(Rules(v), ElementsAre("", "min-subjects", "min-subjects", "secondary-suppression"));
  // Disjoint people: 13 >= 10, nothing more is withheld.
  v = ApplyCellRules(p, Query({v1::COUNT}), {Count(50), Count(6), Count(7), Count(30)});
  EXPECT_THAT(Released(v), ElementsAre(true, false, false, true));
}

// Without subject sets the pool assumes the people overlap as much as they
// can: the withheld cells hold at least as many people as the largest.
TEST(DisclosureTest, PoolWithoutSubjectSetsIsConservative) {
  const DisclosureParams p;
  CellStats a = Count(6), b = Count(7);
  a.subject_ordinals.clear();
  b.subject_ordinals.clear();
  auto v = ApplyCellRules(p, Query({v1::COUNT}), {Count(50), a, b, Count(30)});
  EXPECT_THAT(Released(v), ElementsAre(true, false, false, false));
}

// One person contributing 40% in each of two withheld cells holds 80 of the
// pooled 160 plus the complement; pooled, the dominance test sees the
// person's summed contribution.
TEST(DisclosureTest, PooledDominanceSumsEachPersonsContributions) {
  const DisclosureParams p;
  CellStats a = Measured(20, {60}, 100);          // dominated alone (60%)
  CellStats b = Measured(20, {45}, 100);          // not dominated (45%)
  b.subject_ordinals[0] = a.subject_ordinals[0];  // the same person tops both
  std::sort(b.subject_ordinals.begin(), b.subject_ordinals.end());
  b.subject_contributions.assign(b.subject_contributions.size(), 55.0 / 19);
  b.subject_contributions[0] = 45;  // ordinal order: the shared person is the smallest
  // Pooled as person-cells, a+b is 60 of 200: safe. Pooled by person, one
  // person holds 105 of 200 > 50%: dominated, so c is withheld as well.
  auto v = ApplyCellRules(p, Query({v1::SUM}), {a, b, Measured(20, {5}, 100)});
  EXPECT_THAT(Released(v), ElementsAre(false, false, false));
  EXPECT_THAT(Rules(v), ElementsAre("dominance", "secondary-suppression", "secondary-suppression"));
}

// `c` (one SUM-like aggregate) as the cell of a question COUNT, SUM(m),
// AVG(m) whose SUM and AVG share one contribution column, as the block scan
// keeps them.
CellStats SharedColumn(CellStats c) {
  c.top_contributions = {{}, c.top_contributions[0], c.top_contributions[0]};
  c.abs_totals = {0, c.abs_totals[0], c.abs_totals[0]};
  c.bin_subjects = {{}, {}, {}};
  c.contribution_column = {-1, 0, 0};
  c.contribution_columns = 1;
  return c;
}

// The same with a column per aggregate: [s * 3 + a], zero for COUNT.
CellStats ColumnPerAggregate(CellStats c) {
  c = SharedColumn(c);
  std::vector<double> wide;
  for (double v : c.subject_contributions) wide.insert(wide.end(), {0.0, v, v});
  c.subject_contributions = std::move(wide);
  c.contribution_column.clear();
  c.contribution_columns = 0;
  return c;
}

// Pooling reads each aggregate's contributions through its column, so cells
// that share a column per field decide as cells with a column per aggregate.
// Here the exact pool of a and b (distinct people, the largest 60 of 200) is
// safe and c is released; pooled by bounds alone (60 + 45 of 200) it is not.
// A mapping naming a column the cell does not have is not read: the pool
// falls back to its bounds, as for a cell without subject sets.
TEST(DisclosureTest, PooledDominanceReadsSharedContributionColumns) {
  const DisclosureParams p;
  const v1::AggregateQuery q = Query({v1::COUNT, v1::SUM, v1::AVG});
  const CellStats a = Measured(20, {60}, 100);  // dominated alone (60%)
  const CellStats b = Measured(20, {45}, 100);
  const CellStats c = Measured(20, {5}, 100);

  auto shared = ApplyCellRules(p, q, {SharedColumn(a), SharedColumn(b), SharedColumn(c)});
  EXPECT_THAT(Released(shared), ElementsAre(false, false, true));
  EXPECT_THAT(Rules(shared), ElementsAre("dominance", "secondary-suppression", ""));
  auto wide =
      ApplyCellRules(p, q, {ColumnPerAggregate(a), ColumnPerAggregate(b), ColumnPerAggregate(c)});
  EXPECT_EQ(Released(wide), Released(shared));
  EXPECT_EQ(Rules(wide), Rules(shared));

  CellStats bad = SharedColumn(b);
  bad.contribution_column = {-1, 0, 1};
  auto v = ApplyCellRules(p, q, {SharedColumn(a), bad, SharedColumn(c)});
  EXPECT_THAT(Released(v), ElementsAre(false, false, false));
}

TEST(DisclosureTest, HistogramComplementCountsDistinctPeople) {
  DisclosureParams p;
  p.min_subjects = 5;
  CellStats c;
  c.subjects = 40;
  c.top_contributions = {{}};
  c.abs_totals = {0};
  c.bin_subjects = {{2, 30, 3, 0, 9}};
  NameBinPeople(c);
  // Bins 0 and 2 hold 2 + 3 person-bins, but one person has records in both.
  c.bin_subject_ordinals[0][2][0] = c.bin_subject_ordinals[0][0][0];
  std::sort(c.bin_subject_ordinals[0][2].begin(), c.bin_subject_ordinals[0][2].end());
  auto v = ApplyCellRules(p, Query({v1::HISTOGRAM}), {c});
  EXPECT_THAT(v[0].withheld_bins[0], ElementsAre(0, 2, 4));
}

// A 2-D table's cells keyed by (row, column).
CellStats At(CellStats c, const std::string& row, const std::string& col) {
  c.key = {row, col};
  return c;
}

v1::AggregateQuery Grouped2(std::vector<v1::AggregateKind> kinds) {
  v1::AggregateQuery q = Query(std::move(kinds));
  q.add_group_by("row");
  q.add_group_by("col");
  return q;
}

// Leak 3 of issue 8: the grand-total pool is safe (3 + 40 people), but the
// row margin (GROUP BY row) minus the row's released cell would reveal the
// small cell: its line withholds another cell, and so does its column.
TEST(DisclosureTest, MarginLinesPoolTheirWithheldCells) {
  const DisclosureParams p;
  std::vector<CellStats> cells = {At(Count(3), "a", "x"),  At(Count(30), "a", "y"),
                                  At(Count(40), "b", "x"), At(Count(35), "b", "y"),
                                  At(Count(25), "c", "x"), At(Count(45), "c", "y")};
  auto v = ApplyCellRules(p, Grouped2({v1::COUNT}), cells);
  EXPECT_FALSE(v[0].released);
  EXPECT_EQ(v[0].rule, kRuleMinSubjects);
  // Row a: (a, y) must go; column x: the smallest other, (c, x).
  EXPECT_FALSE(v[1].released);
  EXPECT_FALSE(v[4].released);
  // Then row c's released cell would pin (c, x) and so (a, x) through column
  // x: the audit withholds (c, y), closing the cycle a-c by x-y, along which
  // (a, x) can move by 3 + 25 >= k.
  EXPECT_THAT(Rules(v), ElementsAre("min-subjects", "margin-suppression", "", "",
                                    "secondary-suppression", "interval-audit"));
}

// Without group values, margins cannot be found: everything is withheld.
TEST(DisclosureTest, MissingGroupValuesWithholdEverything) {
  const DisclosureParams p;
  auto v = ApplyCellRules(p, Grouped2({v1::COUNT}), {Count(3), Count(30), Count(40)});
  EXPECT_THAT(Released(v), ElementsAre(false, false, false));
}

// A dominated cell whose line holds only a small cell besides: pooled, the
// line is not dominated, but the grand total minus the released cells pins
// the dominated sum within 10% of its value, so the audit withholds more.
TEST(DisclosureTest, IntervalAuditProtectsDominatedSums) {
  const DisclosureParams p;
  // 1-D: dominated 1000 and a complement worth 50 (pool passes dominance
  // only barely: 600 of 1050 > 50%? no: make the dominant person 500).
  std::vector<CellStats> cells = {Measured(20, {520}, 1000), Measured(12, {5}, 50),
                                  Measured(40, {5}, 400), Measured(50, {5}, 500)};
  // Pool {0, 1}: top person 520 of 1050 < 50%, top two 520 + ~25 < 67%:
  // safe for the pooling rule, but x0 lies in [0, 1050] and 1050 < 1100.
  auto v = ApplyCellRules(p, Query({v1::SUM}), cells);
  EXPECT_FALSE(v[0].released);
  EXPECT_EQ(v[0].rule, kRuleDominance);
  EXPECT_FALSE(v[1].released);
  EXPECT_EQ(v[1].rule, kRuleSecondary);
  EXPECT_FALSE(v[2].released);
  EXPECT_EQ(v[2].rule, kRuleIntervalAudit);
  EXPECT_TRUE(v[3].released);
}

v1::AggregateQuery Filtered() {
  v1::AggregateQuery q = Query({v1::COUNT});
  q.add_where()->set_field("cohort_year");
  q.add_where()->set_field("region");
  return q;
}

TEST(DisclosurePredicateRemovalTest, NoneOrAtLeastKIsFine) {
  const DisclosureParams p;
  EXPECT_OK(CheckPredicateRemovals(p, Filtered(), std::vector<int64_t>{0, 0}));
  EXPECT_OK(CheckPredicateRemovals(p, Filtered(), std::vector<int64_t>{10, 500}));
  EXPECT_OK(CheckPredicateRemovals(p, Query({v1::COUNT}), {}));
}

TEST(DisclosurePredicateRemovalTest, FewerThanKRemovedIsRefusedWithoutTheCount) {
  const DisclosureParams p;
  for (int64_t n : {1, 7, 9}) {
    const absl::Status s = CheckPredicateRemovals(p, Filtered(), std::vector<int64_t>{50, n});
    EXPECT_THAT(
        s, StatusIs(absl::StatusCode::kPermissionDenied,
                    AllOf(HasSubstr("rule 'predicate-removal'"), HasSubstr("filter on 'region'"),
                          Not(HasSubstr(std::to_string(n))))))
        << n;
  }
  EXPECT_THAT(CheckPredicateRemovals(p, Filtered(), std::vector<int64_t>{3, 0}),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("'cohort_year'")));
}

TEST(DisclosurePredicateRemovalTest, MismatchedFiguresFailClosed) {
  const DisclosureParams p;
  EXPECT_FALSE(CheckPredicateRemovals(p, Filtered(), std::vector<int64_t>{0}).ok());
  EXPECT_FALSE(CheckPredicateRemovals(p, Filtered(), std::vector<int64_t>{0, -1}).ok());
}

}  // namespace
}  // namespace fedshare::policy
