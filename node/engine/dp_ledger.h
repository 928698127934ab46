// Durable ε ledgers (DESIGN §8): one per (asking org, dataset) in the budget
// column family (storage::BudgetLedgerKey), changed only by policy/dp_budget.h's
// pure functions under one mutex, each change one synced write. So
// concurrent questions cannot overspend, and a reservation written before a
// crash stays spent until it leaves the window.
//
//   FEDSHARE_ASSIGN_OR_RETURN(uint64_t id, ledger.Reserve(org, dataset, policy, cost, now));
//   ... scan, release, audit ...
//   FEDSHARE_RETURN_IF_ERROR(ledger.Commit(org, dataset, id, std::move(also_written)));
//
// Thread-safe. Within one node process only: the mutex is what serializes
// the read-modify-write (a node opens its store exclusively).
#ifndef FEDSHARE_NODE_ENGINE_DP_LEDGER_H_
#define FEDSHARE_NODE_ENGINE_DP_LEDGER_H_

#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "node/storage/storage.h"
#include "policy/dp_budget.h"

namespace fedshare::engine {

// The stored value: u64 next_id, u32 spends, then per spend u64 id, u64
// micro-ε, ordered time, u8 state (policy::SpendState). All big-endian.
std::string EncodeLedger(const policy::BudgetLedger& ledger);
// nullopt when the bytes are not a ledger.
std::optional<policy::BudgetLedger> DecodeLedger(absl::string_view bytes);

class DpLedger {
 public:
  // `storage` is borrowed and must outlive the ledger.
  explicit DpLedger(storage::Storage* storage) : storage_(storage) {}

  // What is spent and left now. INTERNAL for a corrupt ledger.
  absl::StatusOr<policy::BudgetView> View(absl::string_view org_id, absl::string_view dataset,
                                          const policy::BudgetPolicy& policy, absl::Time now);
  // What a refused reservation lacked, seen under the same lock.
  struct Shortfall {
    int64_t remaining = 0;                        // micro-ε left now
    absl::Time fits_at = absl::InfiniteFuture();  // when the cost would fit
  };
  // Reserves `micro_epsilon` durably (synced before it returns): the spend
  // id, or policy::Reserve's RESOURCE_EXHAUSTED, with `shortfall` (when set)
  // filled in.
  absl::StatusOr<uint64_t> Reserve(absl::string_view org_id, absl::string_view dataset,
                                   const policy::BudgetPolicy& policy, int64_t micro_epsilon,
                                   absl::Time now, Shortfall* shortfall = nullptr);
  // Marks the reservation spent, in one batch with `also` (e.g. the answer
  // kept for repeats).
  absl::Status Commit(absl::string_view org_id, absl::string_view dataset, uint64_t spend_id,
                      storage::WriteBatch also = storage::WriteBatch());
  // Returns the reservation's ε; only when nothing was released.
  absl::Status Cancel(absl::string_view org_id, absl::string_view dataset, uint64_t spend_id);

 private:
  absl::StatusOr<policy::BudgetLedger> Load(const std::string& key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Store(const std::string& key, const policy::BudgetLedger& ledger,
                     storage::WriteBatch batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  storage::Storage* const storage_;
  absl::Mutex mu_;
};

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_DP_LEDGER_H_
