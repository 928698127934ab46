#include "policy/dp_noise.h"

#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"

namespace fedshare::policy {
namespace {

using ::fedshare::testing::StatusIs;

bool OnGrid(double value, double granularity) {
  const double steps = value / granularity;
  return std::isfinite(steps) && steps == std::trunc(steps);
}

TEST(DpNoiseTest, GranularityIsThePowerOfTwoJustAboveScaleOver2To40) {
  for (double scale : {1e-6, 0.3, 1.0, 7.5, 1e3, 123456.789, 1e12}) {
    const double g = NoiseGranularity(scale, /*integer_valued=*/false);
    int exp = 0;
    EXPECT_EQ(std::frexp(g, &exp), 0.5) << scale;  // a power of two
    EXPECT_GE(g, std::ldexp(scale, -kGranularityBits)) << scale;
    EXPECT_LT(g, std::ldexp(scale, 1 - kGranularityBits)) << scale;
  }
  EXPECT_EQ(NoiseGranularity(3, /*integer_valued=*/true), 1);
  EXPECT_EQ(NoiseGranularity(0x1p45, /*integer_valued=*/true), 32);
}

TEST(DpNoiseTest, ScaleIsRoundedUpNeverDown) {
  for (double scale : {0.1, 1.0 / 3, 2.0, 12345.6789, 0x1p40 / 3}) {
    ASSERT_OK_AND_ASSIGN(DiscreteLaplace d, DiscreteLaplace::Create(scale));
    EXPECT_GE(d.scale(), scale);
    EXPECT_LE(d.scale(), scale * (1 + 0x1p-31));
  }
  EXPECT_THAT(DiscreteLaplace::Create(0),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(DiscreteLaplace::Create(0x1p60),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(DiscreteLaplace::Create(NAN),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST(DpNoiseTest, SamplesFollowTheDiscreteLaplaceLaw) {
  ASSERT_OK_AND_ASSIGN(DiscreteLaplace d, DiscreteLaplace::Create(1.5));
  auto rng = AesCtrStream::ForTest("law");
  constexpr int kDraws = 100000;
  std::vector<int> at(5, 0);
  double sum = 0;
  double sum_sq = 0;
  for (int i = 0; i < kDraws; ++i) {
    ASSERT_OK_AND_ASSIGN(int64_t y, d.Sample(*rng));
    sum += y;
    sum_sq += static_cast<double>(y) * y;
    if (y >= -2 && y <= 2) ++at[y + 2];
  }
  const double p = std::exp(-1 / d.scale());
  for (int k = -2; k <= 2; ++k) {
    const double expect = (1 - p) / (1 + p) * std::pow(p, std::abs(k));
    const double sd = std::sqrt(expect * (1 - expect) / kDraws);
    EXPECT_NEAR(at[k + 2] / static_cast<double>(kDraws), expect, 5 * sd) << "k=" << k;
  }
  EXPECT_NEAR(sum / kDraws, 0, 5 * d.StdDev() / std::sqrt(kDraws));
  EXPECT_NEAR(std::sqrt(sum_sq / kDraws), d.StdDev(), 0.02 * d.StdDev());
}

TEST(DpNoiseTest, HalfWidthCoversTheStatedProbability) {
  for (double scale : {0.3, 1.0, 10.0, 1e6}) {
    ASSERT_OK_AND_ASSIGN(DiscreteLaplace d, DiscreteLaplace::Create(scale));
    const int64_t k = d.HalfWidth(0.95);
    // P(|Y| > k) <= 0.05 < P(|Y| > k - 1).
    EXPECT_LE(2 * d.UpperTail(k + 1), 0.05 + 1e-12) << scale;
    if (k > 0) {
      EXPECT_GT(2 * d.UpperTail(k), 0.05) << scale;
    }
  }
}

TEST(DpNoiseTest, ReleasesLieOnTheGridAtEveryMagnitude) {
  auto rng = AesCtrStream::ForTest("grid");
  for (double x : {0.0, 0.1, -3.7, 12345.678901, 1e15 + 0.3, -9.87654321e18}) {
    for (double sensitivity : {0.01, 1.0, 250.0}) {
      for (double eps : {0.01, 0.5, 4.0}) {
        ASSERT_OK_AND_ASSIGN(NoisyRelease r,
                             AddSecureNoise(x, {.sensitivity = sensitivity, .epsilon = eps}, *rng));
        EXPECT_TRUE(OnGrid(r.value, r.granularity)) << x << " " << sensitivity << " " << eps;
        EXPECT_GE(r.laplace_scale * (1 + 1e-12), (sensitivity + r.granularity) / eps);
        EXPECT_LE(r.ci_low, r.value);
        EXPECT_GE(r.ci_high, r.value);
      }
    }
  }
}

TEST(DpNoiseTest, IntervalHoldsTheTrueValueAtLeast95PercentOfTheTime) {
  auto rng = AesCtrStream::ForTest("coverage");
  for (bool integer_valued : {true, false}) {
    const double x = integer_valued ? 40 : 40.3;
    int covered = 0;
    constexpr int kDraws = 20000;
    for (int i = 0; i < kDraws; ++i) {
      ASSERT_OK_AND_ASSIGN(
          NoisyRelease r,
          AddSecureNoise(x, {.sensitivity = 2, .epsilon = 0.7, .integer_valued = integer_valued},
                         *rng));
      if (r.ci_low <= x && x <= r.ci_high) ++covered;
    }
    // >= 95% in truth; allow 4 standard errors of sampling (0.0015 each).
    EXPECT_GE(covered / static_cast<double>(kDraws), 0.95 - 0.006) << integer_valued;
  }
}

TEST(DpNoiseTest, CountsStayIntegers) {
  auto rng = AesCtrStream::ForTest("integers");
  for (int i = 0; i < 1000; ++i) {
    ASSERT_OK_AND_ASSIGN(
        NoisyRelease r,
        AddSecureNoise(17, {.sensitivity = 3, .epsilon = 0.2, .integer_valued = true}, *rng));
    EXPECT_EQ(r.granularity, 1);
    EXPECT_EQ(r.value, std::trunc(r.value));
    EXPECT_EQ(r.snapping, 0);
  }
}

TEST(DpNoiseTest, BadParametersAreRefused) {
  auto rng = AesCtrStream::ForTest("bad");
  EXPECT_THAT(AddSecureNoise(1, {.sensitivity = 1, .epsilon = 0}, *rng),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(AddSecureNoise(1, {.sensitivity = -1, .epsilon = 1}, *rng),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(AddSecureNoise(INFINITY, {.sensitivity = 1, .epsilon = 1}, *rng),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(AddSecureNoise(1.5, {.sensitivity = 1, .epsilon = 1, .integer_valued = true}, *rng),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

}  // namespace
}  // namespace fedshare::policy
