// The stored ε ledger: its encoding, a reservation that outlives the process
// that made it (a crash before commit keeps it spent), and refusals past the
// budget.
#include "node/engine/dp_ledger.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/common/test_temp_dir.h"
#include "node/storage/keys.h"

namespace fedshare::engine {
namespace {

using ::fedshare::testing::ScopedTempDir;
using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);
const policy::BudgetPolicy kPolicy{.micro_epsilon = 1'000'000, .window = absl::Hours(1)};

class DpLedgerTest : public ::testing::Test {
 protected:
  ScopedTempDir dir_{"dp_ledger_test"};
};

TEST_F(DpLedgerTest, EncodingRoundTripsAndRejectsGarbage) {
  policy::BudgetLedger ledger;
  ledger.next_id = 7;
  ledger.spends.push_back({3, 250'000, kNow, policy::SpendState::kReserved});
  ledger.spends.push_back({6, 500'000, kNow + absl::Seconds(1), policy::SpendState::kCommitted});
  const std::string bytes = EncodeLedger(ledger);
  EXPECT_EQ(bytes.size(), 12u + 2 * 25);
  std::optional<policy::BudgetLedger> back = DecodeLedger(bytes);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->next_id, 7u);
  ASSERT_EQ(back->spends.size(), 2u);
  EXPECT_EQ(back->spends[1].id, 6u);
  EXPECT_EQ(back->spends[1].micro_epsilon, 500'000);
  EXPECT_EQ(back->spends[1].at, kNow + absl::Seconds(1));
  EXPECT_EQ(back->spends[1].state, policy::SpendState::kCommitted);
  EXPECT_FALSE(DecodeLedger(bytes.substr(0, bytes.size() - 1)).has_value());
  std::string bad_state = bytes;
  bad_state.back() = 9;
  EXPECT_FALSE(DecodeLedger(bad_state).has_value());
}

TEST_F(DpLedgerTest, ReservationSurvivesReopenWithoutCommit) {
  {
    ASSERT_OK_AND_ASSIGN(auto db, storage::Storage::Create(dir_.path(), storage::StorageOptions()));
    DpLedger ledger(db.get());
    ASSERT_OK(ledger.Reserve("foundation", "program_outcomes", kPolicy, 600'000, kNow).status());
    // The process dies here: no commit, no cancel.
  }
  ASSERT_OK_AND_ASSIGN(auto db, storage::Storage::Create(dir_.path(), storage::StorageOptions()));
  DpLedger ledger(db.get());
  ASSERT_OK_AND_ASSIGN(policy::BudgetView view,
                       ledger.View("foundation", "program_outcomes", kPolicy, kNow));
  EXPECT_EQ(view.spent, 600'000);
  EXPECT_THAT(ledger.Reserve("foundation", "program_outcomes", kPolicy, 600'000, kNow),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("0.4")));
  // Another asker, or another dataset, has a ledger of its own.
  ASSERT_OK(ledger.Reserve("partner-b", "program_outcomes", kPolicy, 600'000, kNow).status());
  ASSERT_OK(ledger.Reserve("foundation", "donations", kPolicy, 600'000, kNow).status());
  // Once it leaves the window, it renews.
  ASSERT_OK(ledger
                .Reserve("foundation", "program_outcomes", kPolicy, 600'000,
                         kNow + absl::Hours(1) + absl::Seconds(1))
                .status());
}

TEST_F(DpLedgerTest, CancelReturnsAndCommitKeeps) {
  ASSERT_OK_AND_ASSIGN(auto db, storage::Storage::Create(dir_.path(), storage::StorageOptions()));
  DpLedger ledger(db.get());
  ASSERT_OK_AND_ASSIGN(uint64_t a, ledger.Reserve("f", "d", kPolicy, 400'000, kNow));
  ASSERT_OK_AND_ASSIGN(uint64_t b, ledger.Reserve("f", "d", kPolicy, 400'000, kNow));
  ASSERT_OK(ledger.Cancel("f", "d", a));
  storage::WriteBatch also;
  also.Put(storage::ColumnFamily::kQueries, "kept", "answer");
  ASSERT_OK(ledger.Commit("f", "d", b, std::move(also)));
  ASSERT_OK_AND_ASSIGN(policy::BudgetView view, ledger.View("f", "d", kPolicy, kNow));
  EXPECT_EQ(view.spent, 400'000);
  ASSERT_OK_AND_ASSIGN(auto kept, db->Get(storage::ColumnFamily::kQueries, "kept"));
  EXPECT_EQ(kept.value_or(""), "answer");
  EXPECT_THAT(ledger.Cancel("f", "d", b),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("committed")));
}

TEST_F(DpLedgerTest, CorruptLedgerFailsClosed) {
  ASSERT_OK_AND_ASSIGN(auto db, storage::Storage::Create(dir_.path(), storage::StorageOptions()));
  ASSERT_OK(db->Put(storage::ColumnFamily::kBudget, storage::BudgetLedgerKey("f", "d"), "junk"));
  DpLedger ledger(db.get());
  EXPECT_THAT(ledger.Reserve("f", "d", kPolicy, 1, kNow),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("corrupt")));
}

}  // namespace
}  // namespace fedshare::engine
