#include "policy/dp_budget.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fedshare::policy {
namespace {

// A spend counts at `now` while now < at + window.
bool Counts(const Spend& s, const BudgetPolicy& policy, absl::Time now) {
  return now < s.at + policy.window;
}

std::string EpsilonText(int64_t micros) { return absl::StrFormat("%.6g", MicrosToEpsilon(micros)); }

}  // namespace

absl::StatusOr<int64_t> EpsilonToMicros(double epsilon) {
  if (!(epsilon >= 0 && epsilon <= 1e6)) {
    return absl::InvalidArgumentError(absl::StrCat("epsilon must be in [0, 10^6], got ", epsilon));
  }
  return static_cast<int64_t>(std::ceil(epsilon * kMicrosPerEpsilon - 1e-6));
}

double MicrosToEpsilon(int64_t micros) { return static_cast<double>(micros) / kMicrosPerEpsilon; }

BudgetView ViewBudget(const BudgetLedger& ledger, const BudgetPolicy& policy, absl::Time now) {
  BudgetView view;
  for (const Spend& s : ledger.spends) {
    if (!Counts(s, policy, now)) continue;
    view.spent += s.micro_epsilon;
    view.next_renewal = std::min(view.next_renewal, s.at + policy.window);
  }
  view.remaining = std::max<int64_t>(0, policy.micro_epsilon - view.spent);
  return view;
}

absl::Time AvailableAt(const BudgetLedger& ledger, const BudgetPolicy& policy,
                       int64_t micro_epsilon, absl::Time now) {
  if (micro_epsilon > policy.micro_epsilon) return absl::InfiniteFuture();
  std::vector<const Spend*> counting;
  int64_t spent = 0;
  for (const Spend& s : ledger.spends) {
    if (!Counts(s, policy, now)) continue;
    counting.push_back(&s);
    spent += s.micro_epsilon;
  }
  std::sort(counting.begin(), counting.end(),
            [](const Spend* a, const Spend* b) { return a->at < b->at; });
  absl::Time at = now;
  for (const Spend* s : counting) {
    if (spent + micro_epsilon <= policy.micro_epsilon) break;
    spent -= s->micro_epsilon;
    at = s->at + policy.window;
  }
  return at;
}

absl::StatusOr<Reservation> Reserve(const BudgetLedger& ledger, const BudgetPolicy& policy,
                                    int64_t micro_epsilon, absl::Time now) {
  if (micro_epsilon < 0) return absl::InvalidArgumentError("a cost cannot be negative");
  Reservation r{Prune(ledger, policy, now), 0};
  const BudgetView view = ViewBudget(r.ledger, policy, now);
  if (micro_epsilon > view.remaining) {
    const absl::Time fits = AvailableAt(r.ledger, policy, micro_epsilon, now);
    return absl::ResourceExhaustedError(absl::StrCat(
        "privacy budget exhausted: this question costs epsilon ", EpsilonText(micro_epsilon), ", ",
        EpsilonText(view.remaining), " of ", EpsilonText(policy.micro_epsilon), " per ",
        absl::FormatDuration(policy.window), " is left; ",
        fits == absl::InfiniteFuture()
            ? std::string("it exceeds the whole budget, so it can never be answered")
            : absl::StrCat("enough renews at ",
                           absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", fits, absl::UTCTimeZone()))));
  }
  r.spend_id = r.ledger.next_id++;
  r.ledger.spends.push_back({r.spend_id, micro_epsilon, now, SpendState::kReserved});
  return r;
}

absl::StatusOr<BudgetLedger> Commit(const BudgetLedger& ledger, uint64_t spend_id) {
  BudgetLedger out = ledger;
  for (Spend& s : out.spends) {
    if (s.id != spend_id) continue;
    s.state = SpendState::kCommitted;
    return out;
  }
  return absl::NotFoundError(absl::StrCat("no budget reservation ", spend_id));
}

absl::StatusOr<BudgetLedger> Cancel(const BudgetLedger& ledger, uint64_t spend_id) {
  BudgetLedger out = ledger;
  for (auto it = out.spends.begin(); it != out.spends.end(); ++it) {
    if (it->id != spend_id) continue;
    if (it->state == SpendState::kCommitted) {
      return absl::FailedPreconditionError(
          absl::StrCat("budget spend ", spend_id, " is committed and cannot be returned"));
    }
    out.spends.erase(it);
    return out;
  }
  return absl::NotFoundError(absl::StrCat("no budget reservation ", spend_id));
}

BudgetLedger Prune(const BudgetLedger& ledger, const BudgetPolicy& policy, absl::Time now) {
  BudgetLedger out;
  out.next_id = ledger.next_id;
  for (const Spend& s : ledger.spends) {
    if (Counts(s, policy, now)) out.spends.push_back(s);
  }
  return out;
}

}  // namespace fedshare::policy
