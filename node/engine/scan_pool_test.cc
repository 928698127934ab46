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

}  // namespace
}  // namespace fedshare::engine
