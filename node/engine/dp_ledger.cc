#include "node/engine/dp_ledger.h"

#include "node/common/status_macros.h"
#include "node/storage/keys.h"

namespace fedshare::engine {

std::string EncodeLedger(const policy::BudgetLedger& ledger) {
  std::string out;
  storage::AppendFixed64BE(&out, ledger.next_id);
  storage::AppendFixed32BE(&out, static_cast<uint32_t>(ledger.spends.size()));
  for (const policy::Spend& s : ledger.spends) {
    storage::AppendFixed64BE(&out, s.id);
    storage::AppendFixed64BE(&out, static_cast<uint64_t>(s.micro_epsilon));
    storage::AppendOrderedTime(&out, s.at);
    out.push_back(static_cast<char>(s.state));
  }
  return out;
}

std::optional<policy::BudgetLedger> DecodeLedger(absl::string_view bytes) {
  constexpr size_t kSpendBytes = 8 + 8 + 8 + 1;
  if (bytes.size() < 12) return std::nullopt;
  policy::BudgetLedger ledger;
  ledger.next_id = storage::DecodeFixed64BE(bytes);
  const uint32_t n = storage::DecodeFixed32BE(bytes.substr(8));
  bytes.remove_prefix(12);
  if (bytes.size() != static_cast<size_t>(n) * kSpendBytes) return std::nullopt;
  for (uint32_t i = 0; i < n; ++i, bytes.remove_prefix(kSpendBytes)) {
    policy::Spend s;
    s.id = storage::DecodeFixed64BE(bytes);
    s.micro_epsilon = static_cast<int64_t>(storage::DecodeFixed64BE(bytes.substr(8)));
    s.at = storage::DecodeOrderedTime(bytes.substr(16));
    const uint8_t state = static_cast<uint8_t>(bytes[24]);
    if (state != static_cast<uint8_t>(policy::SpendState::kReserved) &&
        state != static_cast<uint8_t>(policy::SpendState::kCommitted)) {
      return std::nullopt;
    }
    s.state = static_cast<policy::SpendState>(state);
    ledger.spends.push_back(s);
  }
  return ledger;
}

absl::StatusOr<policy::BudgetLedger> DpLedger::Load(const std::string& key) {
  FEDSHARE_ASSIGN_OR_RETURN(std::optional<std::string> stored,
                            storage_->Get(storage::ColumnFamily::kBudget, key));
  if (!stored.has_value()) return policy::BudgetLedger();
  std::optional<policy::BudgetLedger> ledger = DecodeLedger(*stored);
  // A ledger that cannot be read answers nothing under DP (fail closed).
  if (!ledger.has_value()) return absl::InternalError("the privacy-budget ledger is corrupt");
  return *std::move(ledger);
}

absl::Status DpLedger::Store(const std::string& key, const policy::BudgetLedger& ledger,
                             storage::WriteBatch batch) {
  batch.Put(storage::ColumnFamily::kBudget, key, EncodeLedger(ledger));
  batch.set_essential(true);  // small, and needed for any DP answer to leave
  return storage_->Write(batch);
}

absl::StatusOr<policy::BudgetView> DpLedger::View(absl::string_view org_id,
                                                  absl::string_view dataset,
                                                  const policy::BudgetPolicy& policy,
                                                  absl::Time now) {
  absl::MutexLock lock(&mu_);
  FEDSHARE_ASSIGN_OR_RETURN(policy::BudgetLedger ledger,
                            Load(storage::BudgetLedgerKey(org_id, dataset)));
  return policy::ViewBudget(ledger, policy, now);
}

absl::StatusOr<uint64_t> DpLedger::Reserve(absl::string_view org_id, absl::string_view dataset,
                                           const policy::BudgetPolicy& policy,
                                           int64_t micro_epsilon, absl::Time now,
                                           Shortfall* shortfall) {
  const std::string key = storage::BudgetLedgerKey(org_id, dataset);
  absl::MutexLock lock(&mu_);
  FEDSHARE_ASSIGN_OR_RETURN(policy::BudgetLedger ledger, Load(key));
  absl::StatusOr<policy::Reservation> reserved =
      policy::Reserve(ledger, policy, micro_epsilon, now);
  if (!reserved.ok()) {
    if (shortfall != nullptr && reserved.status().code() == absl::StatusCode::kResourceExhausted) {
      shortfall->remaining = policy::ViewBudget(ledger, policy, now).remaining;
      shortfall->fits_at = policy::AvailableAt(ledger, policy, micro_epsilon, now);
    }
    return reserved.status();
  }
  const policy::Reservation& r = *reserved;
  FEDSHARE_RETURN_IF_ERROR(Store(key, r.ledger, storage::WriteBatch()));
  return r.spend_id;
}

absl::Status DpLedger::Commit(absl::string_view org_id, absl::string_view dataset,
                              uint64_t spend_id, storage::WriteBatch also) {
  const std::string key = storage::BudgetLedgerKey(org_id, dataset);
  absl::MutexLock lock(&mu_);
  FEDSHARE_ASSIGN_OR_RETURN(policy::BudgetLedger ledger, Load(key));
  FEDSHARE_ASSIGN_OR_RETURN(policy::BudgetLedger committed, policy::Commit(ledger, spend_id));
  return Store(key, committed, std::move(also));
}

absl::Status DpLedger::Cancel(absl::string_view org_id, absl::string_view dataset,
                              uint64_t spend_id) {
  const std::string key = storage::BudgetLedgerKey(org_id, dataset);
  absl::MutexLock lock(&mu_);
  FEDSHARE_ASSIGN_OR_RETURN(policy::BudgetLedger ledger, Load(key));
  FEDSHARE_ASSIGN_OR_RETURN(policy::BudgetLedger cancelled, policy::Cancel(ledger, spend_id));
  return Store(key, cancelled, storage::WriteBatch());
}

}  // namespace fedshare::engine
