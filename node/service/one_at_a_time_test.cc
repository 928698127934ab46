#include "node/service/one_at_a_time.h"

#include <atomic>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/barrier.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"

namespace fedshare::service {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;

TEST(OneAtATimeTest, ASecondCallIsAbortedWhileTheFirstRunsAndAdmittedAfter) {
  OneAtATime backups("a backup");
  {
    ASSERT_OK_AND_ASSIGN(OneAtATime::Turn first, backups.Begin());
    EXPECT_THAT(backups.Begin(),
                StatusIs(absl::StatusCode::kAborted,
                         ::testing::Eq("a backup is already running; ask again when it ends")));
    // A moved turn still holds the slot; the moved-from one releases nothing.
    OneAtATime::Turn moved = std::move(first);
    EXPECT_THAT(backups.Begin(), StatusIs(absl::StatusCode::kAborted, HasSubstr("a backup")));
  }
  EXPECT_OK(backups.Begin().status());
}

TEST(OneAtATimeTest, KindsAreIndependent) {
  OneAtATime erasures("an erasure");
  OneAtATime backups("a backup");
  ASSERT_OK_AND_ASSIGN(OneAtATime::Turn erasing, erasures.Begin());
  EXPECT_OK(backups.Begin().status());
  EXPECT_THAT(erasures.Begin(),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("an erasure is already running")));
}

TEST(OneAtATimeTest, OfCallersThatAllComeWhileOneRunsExactlyOneRuns) {
  constexpr int kCallers = 8;
  OneAtATime retention("a retention run");
  // Every caller asks, then waits for all the others to have asked before it
  // ends its turn: all of them overlap the turn that was given.
  absl::Barrier* asked = new absl::Barrier(kCallers);
  std::atomic<int> admitted{0};
  std::atomic<int> aborted{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&] {
      absl::StatusOr<OneAtATime::Turn> turn = retention.Begin();
      if (turn.ok()) {
        ++admitted;
      } else if (turn.status().code() == absl::StatusCode::kAborted) {
        ++aborted;
      }
      if (asked->Block()) delete asked;
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(admitted.load(), 1);
  EXPECT_EQ(aborted.load(), kCallers - 1);
  EXPECT_OK(retention.Begin().status());
}

}  // namespace
}  // namespace fedshare::service
