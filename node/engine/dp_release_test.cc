// The node's DP release over scanned records: contribution bounding of a
// heavy subject, values on their grid, partition selection of a
// single-subject group, and reproducibility from a seeded stream.
#include "node/engine/dp_release.h"

#include <cmath>
#include <string>
#include <vector>

#include "bench/synthetic.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"

namespace fedshare::engine {
namespace {

v1::Value Str(const std::string& s) {
  v1::Value v;
  v.set_string_value(s);
  return v;
}

// Scanned cells by region: north with `north` subjects of one record each
// (score 50), central with one subject, and optionally subject 9999 with
// 1,000 records in north.
struct Scan {
  Execution execution;
  ScannedRecords records;
};

Scan MakeScan(int north, bool heavy, int n_aggs) {
  Scan s;
  for (const char* region : {"central", "north"}) {
    ExecutedCell& cell = s.execution.cells.emplace_back();
    cell.scan_index = static_cast<uint32_t>(s.execution.cells.size() - 1);
    cell.key.push_back(Str(region));
  }
  auto add = [&](uint32_t subject, uint32_t cell, double score) {
    s.records.refs.push_back({subject, cell});
    for (int a = 0; a < n_aggs; ++a) s.records.measures.push_back(a == 0 ? NAN : score);
  };
  add(5000, 0, 70);
  for (int i = 0; i < north; ++i) add(static_cast<uint32_t>(i), 1, 50);
  if (heavy) {
    for (int i = 0; i < 1000; ++i) add(9999, 1, 100);
  }
  return s;
}

v1::AggregateQuery ByRegion() {
  v1::AggregateQuery q;
  q.set_dataset("program_outcomes");
  q.add_group_by("region");
  q.add_aggregates()->set_kind(v1::COUNT);
  v1::Aggregate* sum = q.add_aggregates();
  sum->set_kind(v1::SUM);
  sum->set_field("outcome_score");
  v1::Aggregate* avg = q.add_aggregates();
  avg->set_kind(v1::AVG);
  avg->set_field("outcome_score");
  v1::Aggregate* hist = q.add_aggregates();
  hist->set_kind(v1::HISTOGRAM);
  hist->set_field("outcome_score");
  hist->set_lo(0);
  hist->set_hi(100);
  hist->set_bins(4);
  return q;
}

policy::DpSettings Settings() {
  policy::DpSettings s;
  s.epsilon_per_question = 2.5;  // 0.5 per part: 4 aggregates and the selection
  s.delta = 1e-3;
  s.bounds = {.max_groups_per_subject = 1, .max_records_per_group = 2};
  return s;
}

TEST(DpReleaseTest, PlanSplitsEpsilonAndSelectsOnlyNonPublicKeys) {
  const v1::DatasetSchema schema = synthetic::ProgramOutcomesSchema();
  const DpPlan by_region = PlanDp(ByRegion(), schema, Settings());
  EXPECT_TRUE(by_region.select_partitions);
  EXPECT_DOUBLE_EQ(by_region.epsilon_per_part, 0.5);
  v1::AggregateQuery by_program = ByRegion();
  by_program.set_group_by(0, "program");  // public, declared values
  const DpPlan program = PlanDp(by_program, schema, Settings());
  EXPECT_TRUE(program.enumerate_keys);
  EXPECT_FALSE(program.select_partitions);
  EXPECT_DOUBLE_EQ(program.epsilon_per_part, 2.5 / 4);
}

TEST(DpReleaseTest, SubjectWithThousandRecordsMovesTheBoundedCountByAtMostItsBound) {
  const policy::ContributionBounds bounds{.max_groups_per_subject = 1, .max_records_per_group = 2};
  for (int seed = 0; seed < 20; ++seed) {
    const Scan with = MakeScan(30, /*heavy=*/true, 1);
    const Scan without = MakeScan(30, /*heavy=*/false, 1);
    auto rng = policy::AesCtrStream::ForTest("bound", seed);
    ASSERT_OK_AND_ASSIGN(std::vector<bool> kept_with, BoundRecords(with.records, bounds, *rng));
    rng = policy::AesCtrStream::ForTest("bound", seed);
    ASSERT_OK_AND_ASSIGN(std::vector<bool> kept_without,
                         BoundRecords(without.records, bounds, *rng));
    int64_t with_count = 0, without_count = 0;
    for (bool k : kept_with) with_count += k;
    for (bool k : kept_without) without_count += k;
    EXPECT_EQ(without_count, 31);
    EXPECT_LE(with_count - without_count,
              bounds.max_groups_per_subject * bounds.max_records_per_group);
    EXPECT_GE(with_count - without_count, 1);
  }
}

TEST(DpReleaseTest, EveryReleasedValueLiesOnItsGridWithAnInterval) {
  const v1::DatasetSchema schema = synthetic::ProgramOutcomesSchema();
  const Scan scan = MakeScan(300, true, 4);
  int checked = 0;
  for (int seed = 0; seed < 50; ++seed) {
    auto rng = policy::AesCtrStream::ForTest("grid", seed);
    ASSERT_OK_AND_ASSIGN(
        std::vector<v1::Cell> cells,
        ReleaseDpCells(ByRegion(), schema, scan.execution, scan.records, Settings(), *rng));
    for (const v1::Cell& cell : cells) {
      ASSERT_EQ(cell.values_size(), 4);
      for (int a : {0, 1}) {  // COUNT and SUM are released on their grid
        const v1::AggregateValue& v = cell.values(a);
        ASSERT_GT(v.noise().granularity(), 0);
        EXPECT_EQ(std::fmod(v.value(), v.noise().granularity()), 0) << v.DebugString();
        EXPECT_LE(v.noise().ci_low(), v.value());
        EXPECT_GE(v.noise().ci_high(), v.value());
        ++checked;
      }
      EXPECT_EQ(std::fmod(cell.values(0).value(), 1.0), 0);  // counts are integers
      const v1::AggregateValue& hist = cell.values(3);
      ASSERT_EQ(hist.bins_size(), 4);
      ASSERT_EQ(hist.bin_noise_size(), 4);
      for (int b = 0; b < 4; ++b) {
        EXPECT_EQ(std::fmod(hist.bins(b), hist.bin_noise(b).granularity()), 0);
      }
      // AVG is derived from noisy parts: its interval lies within the bounds.
      EXPECT_GE(cell.values(2).noise().ci_low(), 0);
      EXPECT_LE(cell.values(2).noise().ci_high(), 100);
    }
  }
  EXPECT_GE(checked, 50 * 2);  // north is kept nearly every time
}

TEST(DpReleaseTest, SingleSubjectGroupIsReleasedWithProbabilityWithinDelta) {
  const v1::DatasetSchema schema = synthetic::ProgramOutcomesSchema();
  const Scan scan = MakeScan(300, false, 4);
  constexpr int kRuns = 20000;
  int central = 0, north = 0;
  for (int seed = 0; seed < kRuns; ++seed) {
    auto rng = policy::AesCtrStream::ForTest("selection", seed);
    ASSERT_OK_AND_ASSIGN(
        std::vector<v1::Cell> cells,
        ReleaseDpCells(ByRegion(), schema, scan.execution, scan.records, Settings(), *rng));
    for (const v1::Cell& cell : cells) {
      if (cell.key(0).string_value() == "central") ++central;
      if (cell.key(0).string_value() == "north") ++north;
    }
  }
  // δ = 1e-3: about 20 expected at most; 5 standard deviations above.
  EXPECT_LE(central, 20 + 5 * std::sqrt(20.0));
  EXPECT_EQ(north, kRuns);  // a large group passes: the test is not vacuous
}

TEST(DpReleaseTest, SameStreamSameAnswer) {
  const v1::DatasetSchema schema = synthetic::ProgramOutcomesSchema();
  const Scan scan = MakeScan(300, true, 4);
  std::vector<std::string> answers;
  for (int i = 0; i < 3; ++i) {
    auto rng = policy::AesCtrStream::ForTest("repeat", i == 2 ? 1 : 0);
    ASSERT_OK_AND_ASSIGN(
        std::vector<v1::Cell> cells,
        ReleaseDpCells(ByRegion(), schema, scan.execution, scan.records, Settings(), *rng));
    std::string bytes;
    for (const v1::Cell& c : cells) bytes += c.SerializeAsString();
    answers.push_back(bytes);
  }
  EXPECT_EQ(answers[0], answers[1]);
  EXPECT_NE(answers[0], answers[2]);
}

}  // namespace
}  // namespace fedshare::engine
