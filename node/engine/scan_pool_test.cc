#include "node/engine/scan_pool.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace fedshare::engine {
namespace {

// Eight callers at once on a pool of two: every task runs exactly once, each
// caller returns only after its own tasks, and never more than two run at once.
TEST(ScanPoolTest, ManyCallersShareABoundedSetOfThreads) {
  ScanPool pool(2);
  EXPECT_EQ(pool.threads(), 2);
  std::atomic<int> running{0}, most{0};
  std::vector<std::vector<std::atomic<int>>> runs(8);
  for (auto& r : runs) r = std::vector<std::atomic<int>>(50);
  std::vector<std::thread> callers;
  for (int c = 0; c < 8; ++c) {
    callers.emplace_back([&, c] {
      pool.Run(50, [&](size_t i) {
        const int now = running.fetch_add(1) + 1;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        runs[c][i].fetch_add(1);
        running.fetch_sub(1);
      });
      for (size_t i = 0; i < 50; ++i) EXPECT_EQ(runs[c][i].load(), 1) << c << " " << i;
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_LE(most.load(), 2);
  pool.Run(0, [](size_t) { FAIL() << "no task to run"; });
}

// Questions scanning at once divide the threads: alone a question may use
// all four, two get two each, a third gets one and no pool to split on; a
// share ends with its question.
TEST(ScanPoolTest, QuestionsScanningAtOnceDivideTheThreads) {
  ScanPool pool(4);
  {
    const ScanPool::Share alone(&pool);
    EXPECT_EQ(alone.threads(), 4);
    EXPECT_EQ(alone.pool(), &pool);
    const ScanPool::Share second(&pool);
    EXPECT_EQ(second.threads(), 2);
    EXPECT_EQ(second.pool(), &pool);
    const ScanPool::Share third(&pool);
    EXPECT_EQ(third.threads(), 1);
    EXPECT_EQ(third.pool(), nullptr);
  }
  const ScanPool::Share again(&pool);
  EXPECT_EQ(again.threads(), 4);
  const ScanPool::Share none(nullptr);
  EXPECT_EQ(none.threads(), 1);
  EXPECT_EQ(none.pool(), nullptr);
}

}  // namespace
}  // namespace fedshare::engine
