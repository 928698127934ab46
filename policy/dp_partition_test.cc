#include "policy/dp_partition.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"

namespace fedshare::policy {
namespace {

using ::fedshare::testing::StatusIs;

TEST(DpPartitionTest, SingleSubjectKeyIsKeptWithProbabilityWithinDelta) {
  // A large δ so that a Monte Carlo run can see it.
  constexpr double kDelta = 0.02;
  ASSERT_OK_AND_ASSIGN(
      PartitionSelector selector,
      PartitionSelector::Create({.epsilon = 1, .delta = kDelta, .max_groups_per_subject = 1}));
  EXPECT_LE(selector.KeepProbability(1), kDelta);
  auto rng = AesCtrStream::ForTest("partition-delta");
  constexpr int kTrials = 200000;
  int kept = 0;
  for (int i = 0; i < kTrials; ++i) {
    ASSERT_OK_AND_ASSIGN(bool keep, selector.ShouldKeep(1, *rng));
    kept += keep;
  }
  const double rate = kept / static_cast<double>(kTrials);
  // Within 4 standard errors of the exact probability, which is <= δ.
  const double se = std::sqrt(kDelta / kTrials);
  EXPECT_NEAR(rate, selector.KeepProbability(1), 4 * se);
  EXPECT_LE(rate, kDelta + 4 * se);
}

TEST(DpPartitionTest, DeltaIsSharedAmongTheGroupsOfOneSubject) {
  ASSERT_OK_AND_ASSIGN(
      PartitionSelector one,
      PartitionSelector::Create({.epsilon = 1, .delta = 1e-5, .max_groups_per_subject = 1}));
  ASSERT_OK_AND_ASSIGN(
      PartitionSelector four,
      PartitionSelector::Create({.epsilon = 1, .delta = 1e-5, .max_groups_per_subject = 4}));
  EXPECT_LE(one.KeepProbability(1), 1e-5);
  EXPECT_LE(4 * four.KeepProbability(1), 1e-5);
  EXPECT_GT(four.threshold(), one.threshold());
}

TEST(DpPartitionTest, KeepProbabilityRisesWithSizeWithinEpsilon) {
  constexpr double kEpsilon = 0.5;
  constexpr double kDelta = 1e-6;
  ASSERT_OK_AND_ASSIGN(PartitionSelector selector,
                       PartitionSelector::Create(
                           {.epsilon = kEpsilon, .delta = kDelta, .max_groups_per_subject = 1}));
  EXPECT_EQ(selector.KeepProbability(0), 0);
  for (int64_t n = 1; n < 200; ++n) {
    const double p = selector.KeepProbability(n);
    const double q = selector.KeepProbability(n + 1);
    EXPECT_LE(p, q) << n;
    // (ε, δ): adding one subject changes the keep and drop probabilities by
    // at most a factor e^ε.
    EXPECT_LE(q, std::exp(kEpsilon) * p + kDelta) << n;
    EXPECT_LE(1 - p, std::exp(kEpsilon) * (1 - q) + kDelta) << n;
  }
  EXPECT_GT(selector.KeepProbability(selector.threshold() + 60), 0.9999);
}

TEST(DpPartitionTest, EmptyGroupsAreNeverKept) {
  ASSERT_OK_AND_ASSIGN(
      PartitionSelector selector,
      PartitionSelector::Create({.epsilon = 1, .delta = 0.4, .max_groups_per_subject = 1}));
  auto rng = AesCtrStream::ForTest("empty");
  for (int i = 0; i < 100; ++i) {
    ASSERT_OK_AND_ASSIGN(bool keep, selector.ShouldKeep(0, *rng));
    EXPECT_FALSE(keep);
  }
}

TEST(DpPartitionTest, BadParametersAreRefused) {
  EXPECT_THAT(PartitionSelector::Create({.epsilon = 0, .delta = 1e-6, .max_groups_per_subject = 1}),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(PartitionSelector::Create({.epsilon = 1, .delta = 0, .max_groups_per_subject = 1}),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(PartitionSelector::Create({.epsilon = 1, .delta = 1e-6, .max_groups_per_subject = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

}  // namespace
}  // namespace fedshare::policy
