#include "node/common/time_util.h"

#include "gtest/gtest.h"
#include "node/common/status_matchers.h"

namespace fedshare {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;

TEST(TimeUtilTest, DateRoundTrips) {
  ASSERT_OK_AND_ASSIGN(int32_t days, ParseDateDays("2024-02-29"));
  EXPECT_EQ(FormatDateDays(days), "2024-02-29");
  ASSERT_OK_AND_ASSIGN(int32_t epoch, ParseDateDays("1970-01-01"));
  EXPECT_EQ(epoch, 0);
}

TEST(TimeUtilTest, RejectsBadDate) {
  EXPECT_THAT(ParseDateDays("2024-13-01"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("YYYY-MM-DD")));
}

TEST(TimeUtilTest, ParsesTimeAndDate) {
  ASSERT_OK_AND_ASSIGN(absl::Time t, ParseTimeOrDate("2026-01-31T12:00:00Z"));
  EXPECT_EQ(absl::ToUnixSeconds(t), 1769860800);
  ASSERT_OK_AND_ASSIGN(absl::Time d, ParseTimeOrDate("2026-01-31"));
  EXPECT_EQ(absl::ToUnixSeconds(d), 1769817600);
  EXPECT_THAT(ParseTimeOrDate("yesterday"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("RFC 3339")));
}

TEST(TimeUtilTest, MillisecondTimesHaveOneWidth) {
  const absl::Time t = absl::FromUnixMillis(1764560967210);  // .210, not .21
  EXPECT_EQ(FormatTimeMillis(t), "2025-12-01T03:49:27.210Z");
  EXPECT_EQ(FormatTimeMillis(absl::FromUnixSeconds(1764560967)), "2025-12-01T03:49:27.000Z");
  EXPECT_EQ(fedshare::FormatTime(t), "2025-12-01T03:49:27.21Z");
}

}  // namespace
}  // namespace fedshare
