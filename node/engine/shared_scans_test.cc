#include "node/engine/shared_scans.h"

#include <memory>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "policy/question.h"
#include "query/sql.h"

namespace fedshare::engine {
namespace {

// The key of `sql` as the answerer makes it: from the canonical question's
// hash (the repeat limit's), so the query_id never counts.
std::string Key(const std::string& sql, const std::string& org = "foundation", int max_records = 0,
                int64_t cap = 5, uint32_t table = 0, const std::string& id = "q1") {
  absl::StatusOr<v1::AggregateQuery> q = ParseSql(sql);
  EXPECT_TRUE(q.ok()) << q.status();
  q->set_query_id(id);
  return ScanKey(org, policy::QuestionHash(policy::CanonicalizeQuestion(*q)), max_records, cap,
                 table);
}

constexpr char kQ1[] =
    "SELECT program, COUNT(*) FROM program_outcomes WHERE cohort_year >= 2020 GROUP BY program "
    "PURPOSE 'program-evaluation'";

std::shared_ptr<const policy::ConsentBitmap> Bitmap(uint32_t size, uint32_t set) {
  auto bitmap = std::make_shared<policy::ConsentBitmap>(size);
  bitmap->Set(set, true);
  return bitmap;
}

TEST(ScanKeyTest, OnlyTheQueryIdMayDiffer) {
  const std::string key = Key(kQ1);
  EXPECT_EQ(key, Key(kQ1, "foundation", 0, 5, 0, "another id"));
  EXPECT_NE(key, Key(kQ1, "partner"));
  EXPECT_NE(key, Key("SELECT program, COUNT(*) FROM program_outcomes WHERE cohort_year >= 2020 "
                     "GROUP BY program PURPOSE 'research'"));
  EXPECT_NE(key, Key(kQ1, "foundation", 3));
  EXPECT_NE(key, Key(kQ1, "foundation", 0, 10));
  EXPECT_NE(key, Key(kQ1, "foundation", 0, 5, 256));
  EXPECT_NE(key, Key("SELECT program, COUNT(*) FROM program_outcomes WHERE cohort_year >= 2021 "
                     "GROUP BY program PURPOSE 'program-evaluation'"));
  EXPECT_NE(key, Key("SELECT region, COUNT(*) FROM program_outcomes WHERE cohort_year >= 2020 "
                     "GROUP BY region PURPOSE 'program-evaluation'"));
  // The org's name cannot run into the hash.
  EXPECT_NE(ScanKey("ab", "c", 0, 5, 0), ScanKey("a", "bc", 0, 5, 0));
}

TEST(SharedScansTest, ARunningScanIsFoundOnlyForTheSameKeyGenerationAndConsent) {
  SharedScans scans;
  EXPECT_EQ(scans.Find("k", 7, *Bitmap(100, 3)), nullptr);
  std::shared_ptr<SharedScans::Flight> flight = scans.Begin("k", 7, Bitmap(100, 3));
  EXPECT_TRUE(scans.Running("k"));
  EXPECT_EQ(scans.running(), 1u);
  EXPECT_EQ(scans.Find("other", 7, *Bitmap(100, 3)), nullptr);
  EXPECT_EQ(scans.Find("k", 8, *Bitmap(100, 3)), nullptr) << "a write came in between";
  EXPECT_EQ(scans.Find("k", 7, *Bitmap(100, 4)), nullptr) << "someone else's consent counts";
  EXPECT_EQ(scans.Find("k", 7, *Bitmap(101, 3)), nullptr) << "a subject was added";
  EXPECT_EQ(scans.joined(), 0u);
  EXPECT_EQ(scans.Find("k", 7, *Bitmap(100, 3)), flight);
  EXPECT_EQ(scans.joined(), 1u);

  scans.Publish(flight, std::make_shared<const SharedScan>());
  EXPECT_FALSE(scans.Running("k"));
  EXPECT_EQ(scans.Find("k", 7, *Bitmap(100, 3)), nullptr) << "a finished scan is not kept";
}

TEST(SharedScansTest, AWaiterGetsWhatIsPublishedAndTheErrorOfAFailedScan) {
  SharedScans scans;
  std::shared_ptr<SharedScans::Flight> flight = scans.Begin("k", 1, Bitmap(10, 1));
  std::shared_ptr<SharedScans::Flight> joined = scans.Find("k", 1, *Bitmap(10, 1));
  ASSERT_NE(joined, nullptr);
  absl::StatusOr<std::shared_ptr<const SharedScan>> got;
  std::thread waiter([&] { got = joined->Await(); });
  auto scan = std::make_shared<SharedScan>();
  scan->execution.rows_counted = 42;
  scans.Publish(flight, std::shared_ptr<const SharedScan>(scan));
  waiter.join();
  ASSERT_OK(got.status());
  EXPECT_EQ((*got)->execution.rows_counted, 42);

  std::shared_ptr<SharedScans::Flight> failing = scans.Begin("k", 1, Bitmap(10, 1));
  scans.Publish(failing, absl::CancelledError("its caller gave up"));
  EXPECT_EQ(failing->Await().status().code(), absl::StatusCode::kCancelled);
}

TEST(SharedScansTest, AWaiterWhoseCallerGivesUpStopsWaiting) {
  SharedScans scans;
  std::shared_ptr<SharedScans::Flight> flight = scans.Begin("k", 1, Bitmap(10, 1));
  int asked = 0;
  absl::StatusOr<std::shared_ptr<const SharedScan>> got =
      flight->Await([&] { return ++asked >= 2; }, absl::Milliseconds(1));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kCancelled) << got.status();
  EXPECT_EQ(asked, 2);
  scans.Publish(flight, std::make_shared<const SharedScan>());
}

TEST(SharedScansTest, ALaterScanOfTheSameKeyIsNotUnlistedByTheEarlierOnesEnd) {
  SharedScans scans;
  std::shared_ptr<SharedScans::Flight> first = scans.Begin("k", 1, Bitmap(10, 1));
  std::shared_ptr<SharedScans::Flight> second = scans.Begin("k", 2, Bitmap(10, 1));
  scans.Publish(first, std::make_shared<const SharedScan>());
  EXPECT_EQ(scans.Find("k", 2, *Bitmap(10, 1)), second);
  scans.Publish(second, std::make_shared<const SharedScan>());
  EXPECT_EQ(scans.running(), 0u);
}

TEST(SharedScanTest, TheScanningQuestionsTurnIsHeldUntilTheLastReaderIsDone) {
  AnswerQueue queue(1);
  ASSERT_OK_AND_ASSIGN(AnswerQueue::Slot slot, queue.Enter());
  auto scan = std::make_shared<SharedScan>();
  scan->slot.emplace(std::move(slot));
  std::shared_ptr<const SharedScan> reader = scan;
  scan.reset();
  EXPECT_EQ(queue.running(), 1);
  reader.reset();
  EXPECT_EQ(queue.running(), 0);
}

}  // namespace
}  // namespace fedshare::engine
