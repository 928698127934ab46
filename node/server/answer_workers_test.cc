#include "node/server/answer_workers.h"

#include <atomic>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace fedshare::server {
namespace {

// Polls `cancelled` until it turns true (the job's only way to learn it).
void UntilCancelled(const std::atomic<bool>& cancelled) {
  while (!cancelled.load()) absl::SleepFor(absl::Milliseconds(1));  // polling interval
}

bool Never() { return false; }

TEST(AnswerWorkersTest, QuestionAfterQuestionRunsOnTheThreadsItKeeps) {
  AnswerWorkers workers(2, "test-answer");
  absl::Mutex mu;
  std::set<std::thread::id> threads;
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(workers.AwaitRoom(Never));
    absl::Notification done;
    workers.Add(i, [&](const std::atomic<bool>&) {
      {
        absl::MutexLock lock(&mu);
        threads.insert(std::this_thread::get_id());
      }
      done.Notify();
    });
    done.WaitForNotification();
  }
  workers.CancelAllAndJoin();
  // A thread per question would be 50.
  EXPECT_LE(threads.size(), 2u);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
}

TEST(AnswerWorkersTest, CancelReachesOnlyTheQuestionItNames) {
  AnswerWorkers workers(2, "test-answer");
  absl::Notification first_ended;
  absl::Notification second_ended;
  ASSERT_TRUE(workers.AwaitRoom(Never));
  workers.Add(7, [&](const std::atomic<bool>& cancelled) {
    UntilCancelled(cancelled);
    first_ended.Notify();
  });
  ASSERT_TRUE(workers.AwaitRoom(Never));
  workers.Add(8, [&](const std::atomic<bool>& cancelled) {
    UntilCancelled(cancelled);
    second_ended.Notify();
  });
  workers.Cancel(99);  // no such question
  workers.Cancel(7);
  ASSERT_TRUE(first_ended.WaitForNotificationWithTimeout(absl::Seconds(30)))
      << "the cancel did not reach question 7";
  EXPECT_FALSE(second_ended.HasBeenNotified()) << "cancelling question 7 ended question 8";
  workers.Cancel(8);
  EXPECT_TRUE(second_ended.WaitForNotificationWithTimeout(absl::Seconds(30)))
      << "the cancel did not reach question 8";
}

TEST(AnswerWorkersTest, ClosingCancelsWhatRunsAndWaitsForIt) {
  AnswerWorkers workers(1, "test-answer");
  std::atomic<bool> saw_cancel{false};
  absl::Notification started;
  ASSERT_TRUE(workers.AwaitRoom(Never));
  workers.Add(1, [&](const std::atomic<bool>& cancelled) {
    started.Notify();
    UntilCancelled(cancelled);
    saw_cancel.store(true);
  });
  started.WaitForNotification();
  workers.CancelAllAndJoin();  // returns only once the job has ended
  EXPECT_TRUE(saw_cancel.load());
  workers.CancelAllAndJoin();  // idempotent
}

TEST(AnswerWorkersTest, NoRoomWhileFullUntilStoppedOrAQuestionEnds) {
  AnswerWorkers workers(1, "test-answer");
  absl::Notification release;
  absl::Notification ended;
  ASSERT_TRUE(workers.AwaitRoom(Never));
  workers.Add(1, [&](const std::atomic<bool>&) {
    release.WaitForNotification();
    ended.Notify();
  });
  int asked = 0;
  EXPECT_FALSE(workers.AwaitRoom([&] { return ++asked >= 2; }))
      << "room was given while the one question allowed still ran";
  EXPECT_EQ(asked, 2);
  release.Notify();
  ended.WaitForNotification();
  EXPECT_TRUE(workers.AwaitRoom(Never));
}

}  // namespace
}  // namespace fedshare::server
