// Privacy budget arithmetic (DESIGN §8), pure: the node keeps one ledger per
// (asking org, dataset), persists it, and applies these functions to it under
// one atomic read-modify-write (a transaction or compare-and-swap on the
// stored ledger). The functions never mutate their input.
//
// ε is counted in integer millionths so that sums never drift; a cost is
// rounded up. The window slides: over any span of `window`, the spends that
// count (reserved or committed) never exceed the budget. A spend counts from
// its time `at` until `at + window`; a spend stamped in the future (a clock
// that stepped back) counts until then too.
//
// Life of a question:
//   Reserve (before the scan; refused with RESOURCE_EXHAUSTED past the budget)
//   -> Commit once the answer is released, or Cancel if nothing was released.
// A reservation never committed or cancelled (a crash) keeps counting as
// spent until it leaves the window, so a crash forgets nothing.
//
//   BudgetPolicy policy{.micro_epsilon = EpsilonToMicros(1.0), .window = absl::Hours(24 * 30)};
//   FEDSHARE_ASSIGN_OR_RETURN(Reservation r, Reserve(stored, policy, cost, now));
//   store(r.ledger);  ... answer ...  store(*Commit(r.ledger, r.spend_id));
#ifndef FEDSHARE_POLICY_DP_BUDGET_H_
#define FEDSHARE_POLICY_DP_BUDGET_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fedshare::policy {

inline constexpr int64_t kMicrosPerEpsilon = 1'000'000;

// ε in millionths, rounded up. INVALID_ARGUMENT unless 0 <= ε <= 10^6.
absl::StatusOr<int64_t> EpsilonToMicros(double epsilon);
double MicrosToEpsilon(int64_t micros);

struct BudgetPolicy {
  int64_t micro_epsilon = 0;  // per window
  absl::Duration window = absl::Hours(24);
};

// Stored values; keep them stable (docs/privacy-model.md).
enum class SpendState : uint8_t { kReserved = 1, kCommitted = 2 };

struct Spend {
  uint64_t id = 0;
  int64_t micro_epsilon = 0;
  absl::Time at;
  SpendState state = SpendState::kReserved;
};

// One (asking org, dataset)'s spends, oldest first.
struct BudgetLedger {
  uint64_t next_id = 1;
  std::vector<Spend> spends;
};

struct BudgetView {
  int64_t spent = 0;      // counting at `now`: reserved + committed in the window
  int64_t remaining = 0;  // budget - spent, at least 0
  // When the oldest counting spend leaves the window (InfiniteFuture if none).
  absl::Time next_renewal = absl::InfiniteFuture();
};

BudgetView ViewBudget(const BudgetLedger& ledger, const BudgetPolicy& policy, absl::Time now);

// The earliest time >= now at which `micro_epsilon` fits, given the spends
// already made (InfiniteFuture if it exceeds the whole budget).
absl::Time AvailableAt(const BudgetLedger& ledger, const BudgetPolicy& policy,
                       int64_t micro_epsilon, absl::Time now);

struct Reservation {
  BudgetLedger ledger;  // the new state to persist
  uint64_t spend_id = 0;
};

// Reserves `micro_epsilon` at `now`, after dropping spends that no longer
// count. RESOURCE_EXHAUSTED when it does not fit, saying how much is left and
// when the request would fit; INVALID_ARGUMENT for a negative cost.
absl::StatusOr<Reservation> Reserve(const BudgetLedger& ledger, const BudgetPolicy& policy,
                                    int64_t micro_epsilon, absl::Time now);

// Marks a reservation spent for good. NOT_FOUND if `spend_id` is not a
// reservation in the ledger (already committed is fine: returns it unchanged).
absl::StatusOr<BudgetLedger> Commit(const BudgetLedger& ledger, uint64_t spend_id);

// Returns a reservation's ε. Only when nothing of the answer was released.
// NOT_FOUND if it is not an open reservation; FAILED_PRECONDITION if committed.
absl::StatusOr<BudgetLedger> Cancel(const BudgetLedger& ledger, uint64_t spend_id);

// Drops spends that can never count again at or after `now`.
BudgetLedger Prune(const BudgetLedger& ledger, const BudgetPolicy& policy, absl::Time now);

}  // namespace fedshare::policy

#endif  // FEDSHARE_POLICY_DP_BUDGET_H_
