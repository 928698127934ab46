#include "node/service/limits.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedshare::service {
namespace {

using ::testing::HasSubstr;

// What the throttle reported: one line per storm.
struct Storms {
  absl::Mutex mu;
  std::vector<std::string> callers ABSL_GUARDED_BY(mu);
  std::vector<int64_t> throttled ABSL_GUARDED_BY(mu);

  StormThrottle::Summarise Sink() {
    return [this](const std::string& caller, int64_t n, absl::Time, absl::Time) {
      absl::MutexLock lock(&mu);
      callers.push_back(caller);
      throttled.push_back(n);
    };
  }
};

constexpr char kCaller[] = "spiffe://fed.example/node/partner-a";

TEST(StormThrottleTest, TakeAdmitsAtMostTheLimitHoweverManyArriveAtOnce) {
  Storms storms;
  const absl::Time start = absl::FromUnixSeconds(1'800'000'000);
  constexpr int kLimit = 5, kThreads = 8, kEach = 50;
  {
    StormThrottle throttle(StormThrottle::DryRuns(), kLimit, absl::Minutes(1), storms.Sink());
    std::atomic<int> admitted{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < kEach; ++i) admitted += throttle.Take(kCaller, start).ok();
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(admitted.load(), kLimit);

    const absl::Status refused = throttle.Take(kCaller, start + absl::Seconds(59));
    EXPECT_TRUE(absl::IsResourceExhausted(refused));
    EXPECT_THAT(refused.message(), HasSubstr("over the limit dry_runs_per_window = 5 per 60 s"));
    // Another caller has its own count.
    EXPECT_TRUE(throttle.Take("spiffe://fed.example/node/partner-b", start).ok());

    // The next window admits again, and reports the storm of the last one once.
    EXPECT_TRUE(throttle.Take(kCaller, start + absl::Minutes(1)).ok());
    absl::MutexLock lock(&storms.mu);
    ASSERT_EQ(storms.callers.size(), 1u);
    EXPECT_EQ(storms.callers[0], kCaller);
    EXPECT_EQ(storms.throttled[0], kThreads * kEach - kLimit + 1);
  }
  // Nothing throttled in the windows still open: nothing more reported.
  absl::MutexLock lock(&storms.mu);
  EXPECT_EQ(storms.callers.size(), 1u);
}

TEST(StormThrottleTest, AdmitThrottlesOnlyOnceTheCountedCallsReachTheLimit) {
  Storms storms;
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  {
    StormThrottle throttle(StormThrottle::Refusals(), 2, absl::Minutes(1), storms.Sink());
    // Admitted calls that end well count nothing.
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(throttle.Admit(kCaller, now).ok());
    throttle.Count(kCaller, now);
    EXPECT_TRUE(throttle.Admit(kCaller, now).ok());
    throttle.Count(kCaller, now);
    const absl::Status refused = throttle.Admit(kCaller, now);
    EXPECT_TRUE(absl::IsResourceExhausted(refused));
    EXPECT_THAT(refused.message(),
                HasSubstr("too many refused questions: over the limit refusals_per_window = 2"));
  }
  // The open window's storm is reported when the throttle goes.
  absl::MutexLock lock(&storms.mu);
  ASSERT_EQ(storms.throttled.size(), 1u);
  EXPECT_EQ(storms.throttled[0], 1);
}

}  // namespace
}  // namespace fedshare::service
