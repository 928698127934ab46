// The differential-privacy settings of an agreement (DESIGN §8), with
// defaults filled in, and their validation.
//
//   FEDSHARE_RETURN_IF_ERROR(ValidateDpSettings(agreement, schema));  // at config load
//   const DpSettings dp = EffectiveDp(agreement.disclosure());
//   // dp.epsilon_per_question is what one question costs; the cost is split
//   // evenly between its aggregates and, when it applies, partition selection.
#ifndef FEDSHARE_POLICY_DP_SETTINGS_H_
#define FEDSHARE_POLICY_DP_SETTINGS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "fedshare/v1/types.pb.h"
#include "policy/dp_budget.h"
#include "policy/dp_mechanisms.h"

namespace fedshare::policy {

inline constexpr double kDefaultEpsilonPerQuestion = 0.1;
inline constexpr double kMaxEpsilonPerQuestion = 10;
inline constexpr double kDefaultDelta = 1e-6;
inline constexpr double kMaxDelta = 1e-3;
inline constexpr double kDefaultBudgetEpsilon = 1;
inline constexpr double kMaxBudgetEpsilon = 100;
inline constexpr absl::Duration kDefaultBudgetWindow = absl::Hours(24 * 30);
inline constexpr int64_t kMaxContributionBound = int64_t{1} << 20;

struct DpSettings {
  double epsilon_per_question = kDefaultEpsilonPerQuestion;
  double delta = kDefaultDelta;
  double budget_epsilon = kDefaultBudgetEpsilon;
  absl::Duration window = kDefaultBudgetWindow;
  // L0 from dp.max_groups_per_subject, L∞ from max_records_per_subject;
  // each 1 when unset.
  ContributionBounds bounds;

  BudgetPolicy budget() const;
};

// Defaults for unset (zero) fields. REQUIRES: the disclosure passed
// ValidateDpSettings.
DpSettings EffectiveDp(const v1::Disclosure& disclosure);

// OK, or why the agreement's DP settings cannot be used (the message names
// the field and what to write instead; the caller prefixes the agreement):
// dp set under EXACT; ε per question outside (0, 10]; δ outside (0, 1e-3];
// a budget below one question's ε or above 100; a negative window; a
// contribution bound outside [0, 2^20]; and, under DIFFERENTIAL_PRIVACY, a
// measure field without declared bounds (lower < upper), without which one
// person's contribution to a sum is unbounded.
absl::Status ValidateDpSettings(const v1::Agreement& agreement, const v1::DatasetSchema& schema);

}  // namespace fedshare::policy

#endif  // FEDSHARE_POLICY_DP_SETTINGS_H_
