#include "policy/interval_audit.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"

namespace fedshare::policy {
namespace {

TEST(IntervalAuditTest, OneSumBoundsEachPartByTheSum) {
  ASSERT_OK_AND_ASSIGN(std::vector<Interval> iv, FeasibleIntervals(2, {{{0, 1}, 12.0}}));
  EXPECT_NEAR(iv[0].lo, 0, 1e-9);
  EXPECT_NEAR(iv[0].hi, 12, 1e-9);
  EXPECT_NEAR(iv[1].hi, 12, 1e-9);
}

TEST(IntervalAuditTest, AQuantityInNoSumIsUnbounded) {
  ASSERT_OK_AND_ASSIGN(std::vector<Interval> iv, FeasibleIntervals(2, {{{0}, 5.0}}));
  EXPECT_NEAR(iv[0].lo, 5, 1e-9);
  EXPECT_NEAR(iv[0].hi, 5, 1e-9);
  EXPECT_TRUE(std::isinf(iv[1].hi));
}

// A 2x2 block of withheld cells with its row and column sums known: each cell
// moves with the others along the cycle, within the non-negativity limits.
TEST(IntervalAuditTest, CycleOfFourCells) {
  // x = [[a=3, b=7], [c=5, d=20]]: rows 10, 25; columns 8, 27.
  std::vector<KnownSum> sums = {{{0, 1}, 10}, {{2, 3}, 25}, {{0, 2}, 8}, {{1, 3}, 27}};
  ASSERT_OK_AND_ASSIGN(std::vector<Interval> iv, FeasibleIntervals(4, sums));
  // a = 3 + t with t in [-3, 5] (b = 7 - t >= 0, c = 5 - t >= 0, d = 20 + t >= 0).
  EXPECT_NEAR(iv[0].lo, 0, 1e-9);
  EXPECT_NEAR(iv[0].hi, 8, 1e-9);
}

// Two cycles joined by one withheld cell (a "bridge"): the bridge alone
// carries the difference between the two blocks, so it is exactly determined
// even though every line holds two or more withheld cells.
TEST(IntervalAuditTest, BridgeBetweenTwoCyclesIsDetermined) {
  // Rows r0..r3, columns c0..c3; withheld: the block {r0,r1}x{c0,c1}, the
  // block {r2,r3}x{c2,c3}, and the bridge (r1, c2). Unknowns in order:
  // 0:(0,0) 1:(0,1) 2:(1,0) 3:(1,1) 4:(2,2) 5:(2,3) 6:(3,2) 7:(3,3) 8:(1,2).
  // True values 5,6,7,8, 9,10,11,12, and the bridge 4.
  std::vector<KnownSum> sums = {
      {{0, 1}, 11},     // row 0
      {{2, 3, 8}, 19},  // row 1
      {{4, 5}, 19},     // row 2
      {{6, 7}, 23},     // row 3
      {{0, 2}, 12},     // column 0
      {{1, 3}, 14},     // column 1
      {{4, 6, 8}, 24},  // column 2
      {{5, 7}, 22},     // column 3
  };
  ASSERT_OK_AND_ASSIGN(std::vector<Interval> iv, FeasibleIntervals(9, sums));
  EXPECT_NEAR(iv[8].lo, 4, 1e-6);
  EXPECT_NEAR(iv[8].hi, 4, 1e-6);
  EXPECT_GT(iv[0].hi - iv[0].lo, 1);
}

TEST(IntervalAuditTest, IndexOutOfRangeIsInvalid) {
  EXPECT_FALSE(FeasibleIntervals(1, {{{3}, 1.0}}).ok());
}

}  // namespace
}  // namespace fedshare::policy
