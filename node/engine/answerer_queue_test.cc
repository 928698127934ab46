#include "node/engine/answerer_queue.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"

namespace fedshare::engine {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Waits until `n` questions wait in `queue`: they entered in the order the
// test started them.
void AwaitWaiting(const AnswerQueue& queue, int n) {
  while (queue.waiting() < n) std::this_thread::yield();
}

TEST(AnswerQueueTest, QuestionsBeyondTheSlotsGetTheirTurnInArrivalOrder) {
  AnswerQueue queue(1);
  ASSERT_OK_AND_ASSIGN(AnswerQueue::Slot first, queue.Enter());
  absl::Mutex mu;
  std::vector<int> order;
  std::vector<std::thread> askers;
  for (int i = 0; i < 5; ++i) {
    askers.emplace_back([&, i] {
      absl::StatusOr<AnswerQueue::Slot> slot = queue.Enter();
      ASSERT_OK(slot.status());
      absl::MutexLock lock(&mu);
      order.push_back(i);
    });
    AwaitWaiting(queue, i + 1);
  }
  EXPECT_EQ(queue.running(), 1);
  first.Release();
  for (std::thread& t : askers) t.join();
  EXPECT_THAT(order, ElementsAre(0, 1, 2, 3, 4));
  EXPECT_EQ(queue.running(), 0);
  EXPECT_EQ(queue.waiting(), 0);
  EXPECT_EQ(queue.turns(), 6u) << "one at once, five after waiting";
}

TEST(AnswerQueueTest, NeverMoreThanItsSlotsAtOnce) {
  AnswerQueue queue(2);
  std::atomic<int> inside{0};
  std::atomic<int> most{0};
  std::vector<std::thread> askers;
  for (int i = 0; i < 8; ++i) {
    askers.emplace_back([&] {
      for (int round = 0; round < 200; ++round) {
        absl::StatusOr<AnswerQueue::Slot> slot = queue.Enter();
        ASSERT_OK(slot.status());
        const int now = ++inside;
        for (int seen = most.load(); now > seen && !most.compare_exchange_weak(seen, now);) {
        }
        --inside;
      }
    });
  }
  for (std::thread& t : askers) t.join();
  EXPECT_LE(most.load(), 2);
  EXPECT_GE(most.load(), 1);
  EXPECT_EQ(queue.running(), 0);
}

TEST(AnswerQueueTest, AQuestionThatGivesUpLeavesTheLineAndTakesNoSlot) {
  AnswerQueue queue(1);
  ASSERT_OK_AND_ASSIGN(AnswerQueue::Slot held, queue.Enter());
  std::atomic<bool> give_up{false};
  absl::Status left;
  std::thread asker([&] {
    left = queue.Enter([&give_up] { return give_up.load(); }, absl::Milliseconds(1)).status();
  });
  AwaitWaiting(queue, 1);
  give_up.store(true);
  asker.join();
  EXPECT_THAT(left, StatusIs(absl::StatusCode::kCancelled, HasSubstr("limits.scan_threads")));
  EXPECT_EQ(queue.waiting(), 0);
  // The slot it never had goes to the next question at once.
  held.Release();
  EXPECT_EQ(queue.running(), 0);
  ASSERT_OK_AND_ASSIGN(AnswerQueue::Slot next, queue.Enter());
  EXPECT_EQ(queue.running(), 1);
  EXPECT_EQ(queue.turns(), 2u) << "the question that gave up had no turn";
}

}  // namespace
}  // namespace fedshare::engine
