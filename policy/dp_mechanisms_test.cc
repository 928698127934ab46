#include "policy/dp_mechanisms.h"

#include <cmath>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"

namespace fedshare::policy {
namespace {

using ::fedshare::testing::StatusIs;

bool OnGrid(const NoisyRelease& r) {
  const double steps = r.value / r.granularity;
  return r.granularity > 0 && steps == std::trunc(steps);
}

// 100 subjects with one record each in cell 0, plus subject 1000 with 1,000
// records spread over 20 cells when `with_heavy` is set.
std::vector<RecordRef> Records(bool with_heavy) {
  std::vector<RecordRef> records;
  for (uint32_t s = 0; s < 100; ++s) records.push_back({s, 0});
  if (with_heavy) {
    for (uint32_t i = 0; i < 1000; ++i) records.push_back({1000, i % 20});
  }
  return records;
}

std::vector<int64_t> BoundedCellCounts(const std::vector<RecordRef>& records,
                                       const ContributionBounds& bounds, RandomSource& rng) {
  std::vector<int64_t> counts(20, 0);
  auto keep = SelectBoundedRecords(records, bounds, rng);
  EXPECT_OK(keep.status());
  for (size_t i = 0; i < records.size(); ++i) {
    if ((*keep)[i]) ++counts[records[i].cell];
  }
  return counts;
}

TEST(DpMechanismsTest, BoundingKeepsAtMostL0CellsAndLinfRecordsPerCell) {
  auto rng = AesCtrStream::ForTest("bounding");
  const ContributionBounds bounds{.max_groups_per_subject = 3, .max_records_per_group = 2};
  const std::vector<RecordRef> records = Records(/*with_heavy=*/true);
  ASSERT_OK_AND_ASSIGN(std::vector<bool> keep, SelectBoundedRecords(records, bounds, *rng));
  std::set<uint32_t> heavy_cells;
  int heavy_kept = 0;
  int light_kept = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    if (!keep[i]) continue;
    if (records[i].subject == 1000) {
      heavy_cells.insert(records[i].cell);
      ++heavy_kept;
    } else {
      ++light_kept;
    }
  }
  EXPECT_EQ(heavy_cells.size(), 3u);
  EXPECT_EQ(heavy_kept, 6);
  EXPECT_EQ(light_kept, 100);  // subjects within the bounds lose nothing
}

TEST(DpMechanismsTest, SubjectWithThousandRecordsMovesCountsByAtMostItsBound) {
  const ContributionBounds bounds{.max_groups_per_subject = 2, .max_records_per_group = 3};
  const DpParams params{.epsilon = 1, .bounds = bounds};
  for (uint64_t trial = 0; trial < 50; ++trial) {
    auto bounding = AesCtrStream::ForTest("heavy-bounding", trial);
    const std::vector<int64_t> without =
        BoundedCellCounts(Records(false), bounds, *AesCtrStream::ForTest("light", trial));
    const std::vector<int64_t> with = BoundedCellCounts(Records(true), bounds, *bounding);
    // The same noise stream on both datasets: the released figures differ by
    // exactly what the bounded scan let the heavy subject add.
    auto noise_a = AesCtrStream::ForTest("heavy-noise", trial);
    auto noise_b = AesCtrStream::ForTest("heavy-noise", trial);
    double released_change = 0;
    for (size_t cell = 0; cell < without.size(); ++cell) {
      ASSERT_OK_AND_ASSIGN(NoisyRelease a, ReleaseCount(without[cell], params, *noise_a));
      ASSERT_OK_AND_ASSIGN(NoisyRelease b, ReleaseCount(with[cell], params, *noise_b));
      released_change += std::abs(b.value - a.value);
      EXPECT_LE(std::abs(b.value - a.value), bounds.max_records_per_group);
    }
    EXPECT_LE(released_change, bounds.max_groups_per_subject * bounds.max_records_per_group);
    EXPECT_GT(released_change, 0);
  }
}

TEST(DpMechanismsTest, EveryReleasedNoisyValueLiesOnItsGrid) {
  auto rng = AesCtrStream::ForTest("mechanism-grid");
  const DpParams params{.epsilon = 0.3,
                        .bounds = {.max_groups_per_subject = 2, .max_records_per_group = 4}};
  BoundedMoments m(-3.5, 117.25);
  for (int i = 0; i < 500; ++i) m.Add(std::fmod(i * 7.31, 130) - 5);
  for (int trial = 0; trial < 200; ++trial) {
    ASSERT_OK_AND_ASSIGN(NoisyRelease count, ReleaseCount(m.count(), params, *rng));
    ASSERT_OK_AND_ASSIGN(NoisyRelease distinct, ReleaseDistinctCount(311, params, *rng));
    ASSERT_OK_AND_ASSIGN(NoisyRelease sum, ReleaseSum(m, params, *rng));
    ASSERT_OK_AND_ASSIGN(MeanRelease mean, ReleaseMean(m, params, *rng));
    ASSERT_OK_AND_ASSIGN(VarianceRelease var, ReleaseVariance(m, params, *rng));
    const std::vector<int64_t> bins = {0, 3, 90, 12};
    ASSERT_OK_AND_ASSIGN(std::vector<NoisyRelease> hist, ReleaseHistogram(bins, params, *rng));
    for (const NoisyRelease* r : {&count, &distinct, &sum, &mean.count, &mean.centred_sum,
                                  &var.count, &var.centred_sum, &var.centred_sum_sq}) {
      EXPECT_TRUE(OnGrid(*r)) << r->value << " granularity " << r->granularity;
    }
    for (const NoisyRelease& bin : hist) EXPECT_TRUE(OnGrid(bin));
    EXPECT_EQ(count.granularity, 1);
    EXPECT_EQ(distinct.granularity, 1);
  }
}

// The applied scale is sensitivity / ε plus a snapping step (2^-40 of it),
// rounded up to a 32-bit mantissa: never less, and at most 1e-9 more.
void ExpectScale(const NoisyRelease& r, double want) {
  EXPECT_GE(r.laplace_scale, want);
  EXPECT_LE(r.laplace_scale, want * (1 + 1e-9));
}

TEST(DpMechanismsTest, SensitivitiesFollowTheBounds) {
  auto rng = AesCtrStream::ForTest("sensitivity");
  const DpParams params{.epsilon = 0.5,
                        .bounds = {.max_groups_per_subject = 2, .max_records_per_group = 3}};
  BoundedMoments m(-4, 10);
  m.Add(1);
  ASSERT_OK_AND_ASSIGN(NoisyRelease count, ReleaseCount(1, params, *rng));
  EXPECT_DOUBLE_EQ(count.laplace_scale, 6 / 0.5);
  ASSERT_OK_AND_ASSIGN(NoisyRelease distinct, ReleaseDistinctCount(1, params, *rng));
  EXPECT_DOUBLE_EQ(distinct.laplace_scale, 2 / 0.5);
  ASSERT_OK_AND_ASSIGN(NoisyRelease sum, ReleaseSum(m, params, *rng));
  ExpectScale(sum, 6 * 10 / 0.5);
  ASSERT_OK_AND_ASSIGN(MeanRelease mean, ReleaseMean(m, params, *rng));
  EXPECT_DOUBLE_EQ(mean.count.laplace_scale, 6 / 0.25);
  ExpectScale(mean.centred_sum, 6 * 7 / 0.25);
  EXPECT_DOUBLE_EQ(mean.mean.epsilon, 0.5);
  ASSERT_OK_AND_ASSIGN(VarianceRelease var, ReleaseVariance(m, params, *rng));
  ExpectScale(var.centred_sum_sq, 6 * 49 / (0.5 / 3));
}

TEST(DpMechanismsTest, LargeCellsGiveAccurateMeansAndVariances) {
  auto rng = AesCtrStream::ForTest("accuracy");
  const DpParams params{.epsilon = 1, .bounds = {}};
  BoundedMoments m(0, 100);
  double sum = 0;
  double sum_sq = 0;
  constexpr int kN = 20000;
  for (int i = 0; i < kN; ++i) {
    const double x = (i * 37) % 101;  // 0..100
    m.Add(x);
    sum += x;
    sum_sq += x * x;
  }
  m.Add(1e9);  // clamped to 100
  sum += 100;
  sum_sq += 100 * 100;
  const double n = kN + 1;
  const double mean = sum / n;
  const double var = sum_sq / n - mean * mean;
  ASSERT_OK_AND_ASSIGN(MeanRelease avg, ReleaseMean(m, params, *rng));
  EXPECT_NEAR(avg.mean.value, mean, 0.1);
  EXPECT_LE(avg.mean.ci_low, mean);
  EXPECT_GE(avg.mean.ci_high, mean);
  ASSERT_OK_AND_ASSIGN(VarianceRelease v, ReleaseVariance(m, params, *rng));
  EXPECT_NEAR(v.variance.value, var, 0.01 * var);
  EXPECT_LE(v.variance.ci_low, var);
  EXPECT_GE(v.variance.ci_high, var);
  EXPECT_NEAR(v.stddev.value, std::sqrt(var), 0.01 * std::sqrt(var));
}

TEST(DpMechanismsTest, DerivedIntervalsCoverAtLeast95Percent) {
  const DpParams params{.epsilon = 0.5, .bounds = {}};
  BoundedMoments m(0, 10);
  for (int i = 0; i < 40; ++i) m.Add(i % 11);
  const double mean = m.clamped_sum() / m.count();
  const double var = m.centred_sum_sq() / m.count() - std::pow(m.centred_sum() / m.count(), 2);
  auto rng = AesCtrStream::ForTest("derived-coverage");
  int mean_covered = 0;
  int var_covered = 0;
  constexpr int kTrials = 4000;
  for (int i = 0; i < kTrials; ++i) {
    ASSERT_OK_AND_ASSIGN(MeanRelease a, ReleaseMean(m, params, *rng));
    ASSERT_OK_AND_ASSIGN(VarianceRelease v, ReleaseVariance(m, params, *rng));
    mean_covered += a.mean.ci_low <= mean && mean <= a.mean.ci_high;
    var_covered += v.variance.ci_low <= var && var <= v.variance.ci_high;
    EXPECT_GE(a.mean.value, 0);
    EXPECT_LE(a.mean.value, 10);
    EXPECT_GE(v.variance.value, 0);
    EXPECT_LE(v.variance.value, 25);
  }
  EXPECT_GE(mean_covered, 0.95 * kTrials - 60);
  EXPECT_GE(var_covered, 0.95 * kTrials - 60);
}

TEST(DpMechanismsTest, SameSeedSameAnswerOtherVersionOtherAnswer) {
  const std::string secret(32, 'k');
  const DpParams params{.epsilon = 0.2, .bounds = {}};
  BoundedMoments m(0, 50);
  for (int i = 0; i < 30; ++i) m.Add(i);
  auto answer = [&](uint64_t version) {
    auto seed = DeriveNoiseSeed(secret, "sha256:question", version);
    EXPECT_OK(seed.status());
    auto rng = AesCtrStream::Create(*seed);
    EXPECT_OK(rng.status());
    auto mean = ReleaseMean(m, params, **rng);
    EXPECT_OK(mean.status());
    return mean->mean.value;
  };
  EXPECT_EQ(answer(3), answer(3));
  EXPECT_NE(answer(3), answer(4));
}

TEST(DpMechanismsTest, BadParametersAreRefused) {
  auto rng = AesCtrStream::ForTest("bad-params");
  EXPECT_THAT(ReleaseCount(1, {.epsilon = -1, .bounds = {}}, *rng),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(ReleaseCount(1, {.epsilon = 1, .bounds = {.max_groups_per_subject = 0}}, *rng),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(ReleaseMean(BoundedMoments(5, 5), {.epsilon = 1, .bounds = {}}, *rng),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

}  // namespace
}  // namespace fedshare::policy
