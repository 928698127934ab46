#include "policy/dp_settings.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace fedshare::policy {

BudgetPolicy DpSettings::budget() const {
  BudgetPolicy policy;
  // Validated budgets are at most 100, so the conversion cannot fail.
  policy.micro_epsilon = EpsilonToMicros(budget_epsilon).value_or(0);
  policy.window = window;
  return policy;
}

DpSettings EffectiveDp(const v1::Disclosure& disclosure) {
  DpSettings s;
  const v1::DifferentialPrivacy& dp = disclosure.dp();
  if (dp.epsilon_per_question() > 0) s.epsilon_per_question = dp.epsilon_per_question();
  if (dp.delta() > 0) s.delta = dp.delta();
  if (dp.budget_epsilon() > 0) s.budget_epsilon = dp.budget_epsilon();
  if (dp.budget_window_seconds() > 0) s.window = absl::Seconds(dp.budget_window_seconds());
  if (dp.max_groups_per_subject() > 0)
    s.bounds.max_groups_per_subject = dp.max_groups_per_subject();
  if (disclosure.max_records_per_subject() > 0) {
    s.bounds.max_records_per_group = disclosure.max_records_per_subject();
  }
  return s;
}

absl::Status ValidateDpSettings(const v1::Agreement& agreement, const v1::DatasetSchema& schema) {
  const v1::Disclosure& d = agreement.disclosure();
  const bool dp_mode = d.mode() == v1::Disclosure::DIFFERENTIAL_PRIVACY;
  if (!dp_mode) {
    if (d.has_dp()) {
      return absl::InvalidArgumentError(
          "disclosure.dp is set but disclosure.mode is not DIFFERENTIAL_PRIVACY: set the mode, "
          "or remove dp");
    }
    return absl::OkStatus();
  }
  const v1::DifferentialPrivacy& dp = d.dp();
  const double eps = dp.epsilon_per_question();
  if (!std::isfinite(eps) || eps < 0 || eps > kMaxEpsilonPerQuestion) {
    return absl::InvalidArgumentError(absl::StrCat(
        "disclosure.dp.epsilon_per_question ", eps, " is outside (0, ", kMaxEpsilonPerQuestion,
        "]: use e.g. 0.1, or 0 for the default ", kDefaultEpsilonPerQuestion));
  }
  if (!std::isfinite(dp.delta()) || dp.delta() < 0 || dp.delta() > kMaxDelta) {
    return absl::InvalidArgumentError(
        absl::StrCat("disclosure.dp.delta ", dp.delta(), " is outside (0, ", kMaxDelta,
                     "]: use e.g. 1e-6, or 0 for the default ", kDefaultDelta));
  }
  const DpSettings s = EffectiveDp(d);
  if (!std::isfinite(dp.budget_epsilon()) || dp.budget_epsilon() < 0 ||
      s.budget_epsilon > kMaxBudgetEpsilon || s.budget_epsilon < s.epsilon_per_question) {
    return absl::InvalidArgumentError(
        absl::StrCat("disclosure.dp.budget_epsilon ", s.budget_epsilon,
                     " must lie between one question's ε (", s.epsilon_per_question, ") and ",
                     kMaxBudgetEpsilon, "; 0 means the default ", kDefaultBudgetEpsilon));
  }
  if (dp.budget_window_seconds() < 0) {
    return absl::InvalidArgumentError(
        "disclosure.dp.budget_window_seconds must be >= 0 (0 for the default 2592000, 30 days)");
  }
  if (dp.max_groups_per_subject() < 0 || dp.max_groups_per_subject() > kMaxContributionBound ||
      d.max_records_per_subject() > kMaxContributionBound) {
    return absl::InvalidArgumentError(
        absl::StrCat("disclosure.dp.max_groups_per_subject and max_records_per_subject must lie in "
                     "[0, ",
                     kMaxContributionBound, "] under differential privacy (0 means 1)"));
  }
  for (const std::string& name : agreement.measure_fields()) {
    for (const v1::FieldSchema& f : schema.fields()) {
      if (f.name() == name && !(f.lower() < f.upper())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "measure field '", name,
            "' has no declared bounds (lower < upper) in the schema: differential privacy needs "
            "them to bound what one person adds to a sum"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace fedshare::policy
