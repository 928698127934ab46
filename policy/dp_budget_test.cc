#include "policy/dp_budget.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "policy/dp_random.h"

namespace fedshare::policy {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);
const BudgetPolicy kPolicy{.micro_epsilon = 1'000'000, .window = absl::Hours(24)};

TEST(DpBudgetTest, EpsilonIsCountedInMillionthsRoundedUp) {
  EXPECT_EQ(*EpsilonToMicros(0.1), 100'000);
  EXPECT_EQ(*EpsilonToMicros(1.0), 1'000'000);
  EXPECT_EQ(*EpsilonToMicros(0.0000011), 2);
  EXPECT_THAT(EpsilonToMicros(-1), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST(DpBudgetTest, QuestionPastTheBudgetIsRefusedWithWhatIsLeftAndWhen) {
  BudgetLedger ledger;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(Reservation r, Reserve(ledger, kPolicy, 300'000, kT0 + absl::Hours(i)));
    ASSERT_OK_AND_ASSIGN(ledger, Commit(r.ledger, r.spend_id));
  }
  EXPECT_EQ(ViewBudget(ledger, kPolicy, kT0 + absl::Hours(3)).remaining, 100'000);
  EXPECT_THAT(Reserve(ledger, kPolicy, 200'000, kT0 + absl::Hours(3)),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("costs epsilon 0.2"), HasSubstr("0.1 of 1 per 24h"),
                             HasSubstr("renews at 2027-01-16T08:00:00Z"))));
  EXPECT_EQ(AvailableAt(ledger, kPolicy, 200'000, kT0 + absl::Hours(3)), kT0 + absl::Hours(24));
  // The first spend leaves the window after 24 hours: it fits then.
  EXPECT_OK(Reserve(ledger, kPolicy, 200'000, kT0 + absl::Hours(24)).status());
  EXPECT_THAT(Reserve(ledger, kPolicy, 1'000'001, kT0),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("can never be answered")));
}

TEST(DpBudgetTest, UncommittedReservationStillCountsAfterACrash) {
  ASSERT_OK_AND_ASSIGN(Reservation r, Reserve({}, kPolicy, 900'000, kT0));
  // The node crashed before committing: the stored ledger holds the reservation.
  EXPECT_EQ(ViewBudget(r.ledger, kPolicy, kT0 + absl::Hours(1)).spent, 900'000);
  EXPECT_THAT(Reserve(r.ledger, kPolicy, 200'000, kT0 + absl::Hours(1)),
              StatusIs(absl::StatusCode::kResourceExhausted, ::testing::_));
}

TEST(DpBudgetTest, CancelReturnsAReservationButNotACommittedSpend) {
  ASSERT_OK_AND_ASSIGN(Reservation r, Reserve({}, kPolicy, 500'000, kT0));
  ASSERT_OK_AND_ASSIGN(BudgetLedger cancelled, Cancel(r.ledger, r.spend_id));
  EXPECT_EQ(ViewBudget(cancelled, kPolicy, kT0).spent, 0);
  ASSERT_OK_AND_ASSIGN(BudgetLedger committed, Commit(r.ledger, r.spend_id));
  EXPECT_THAT(Cancel(committed, r.spend_id),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  EXPECT_THAT(Commit(committed, 999), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

// The largest total of spends inside any window-long span.
int64_t WorstWindow(const std::vector<Spend>& spends, absl::Duration window) {
  int64_t worst = 0;
  for (const Spend& start : spends) {
    int64_t total = 0;
    for (const Spend& s : spends) {
      if (s.at >= start.at && s.at < start.at + window) total += s.micro_epsilon;
    }
    worst = std::max(worst, total);
  }
  return worst;
}

// 32 concurrent questions, each: read the stored ledger, compute Reserve on
// its copy, and write back only if the ledger did not change meanwhile
// (compare-and-swap on a version, as the node's store will); then, later,
// commit or cancel the same way. Random schedules from a seeded stream; the
// stored ledger never shows more than the budget in any window.
TEST(DpBudgetTest, ConcurrentReservationsNeverOverspendUnderAnyInterleaving) {
  const BudgetPolicy policy{.micro_epsilon = 1'000'000, .window = absl::Minutes(10)};
  int refused = 0;
  int lost_races = 0;
  int64_t fullest = 0;
  for (uint64_t schedule = 0; schedule < 200; ++schedule) {
    auto rng = AesCtrStream::ForTest("interleavings", schedule);
    BudgetLedger stored;
    uint64_t version = 0;
    std::vector<Spend> recorded;  // every spend ever stored and not cancelled
    struct Actor {
      int step = 0;  // 0 read, 1 write reservation, 2 read, 3 write commit/cancel, 4 done
      BudgetLedger view;
      uint64_t seen_version = 0;
      uint64_t spend_id = 0;
      int64_t cost = 0;
      bool cancel = false;
    };
    std::vector<Actor> actors(32);
    for (Actor& a : actors) {
      a.cost = 50'000 + static_cast<int64_t>(*rng->UniformBelow(100'000));
      a.cancel = *rng->UniformBelow(4) == 0;
    }
    absl::Time now = kT0;
    int done = 0;
    while (done < static_cast<int>(actors.size())) {
      Actor& a = actors[*rng->UniformBelow(actors.size())];
      now += absl::Seconds(static_cast<int64_t>(*rng->UniformBelow(4)));
      switch (a.step) {
        case 0:
        case 2:
          a.view = stored;
          a.seen_version = version;
          ++a.step;
          break;
        case 1: {
          if (a.seen_version != version) {  // lost the race: retry from the read
            ++lost_races;
            a.step = 0;
            break;
          }
          auto r = Reserve(a.view, policy, a.cost, now);
          if (!r.ok()) {
            ASSERT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
            ++refused;
            a.step = 4;
            ++done;
            break;
          }
          stored = r->ledger;
          ++version;
          a.spend_id = r->spend_id;
          a.step = 2;
          break;
        }
        case 3: {
          if (a.seen_version != version) {
            a.step = 2;
            break;
          }
          auto next = a.cancel ? Cancel(a.view, a.spend_id) : Commit(a.view, a.spend_id);
          // A reservation may have been pruned once out of the window.
          if (next.ok()) {
            stored = *next;
            ++version;
            if (a.cancel) {
              recorded.erase(std::remove_if(recorded.begin(), recorded.end(),
                                            [&](const Spend& s) { return s.id == a.spend_id; }),
                             recorded.end());
            }
          }
          a.step = 4;
          ++done;
          break;
        }
        default:
          break;
      }
      for (const Spend& s : stored.spends) {
        bool known = false;
        for (const Spend& e : recorded) known |= e.id == s.id;
        if (!known) recorded.push_back(s);
      }
      // Everything ever reserved and not given back, pruned or not, stays
      // within the budget over every window.
      ASSERT_LE(WorstWindow(recorded, policy.window), policy.micro_epsilon)
          << "schedule " << schedule;
    }
    fullest = std::max(fullest, WorstWindow(recorded, policy.window));
  }
  // Not vacuous: races were lost, questions refused, and the budget filled.
  EXPECT_GT(lost_races, 1000);
  EXPECT_GT(refused, 100);
  EXPECT_GT(fullest, 900'000);
}

}  // namespace
}  // namespace fedshare::policy
