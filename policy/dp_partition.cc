#include "policy/dp_partition.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "node/common/status_macros.h"

namespace fedshare::policy {

absl::StatusOr<PartitionSelector> PartitionSelector::Create(
    const PartitionSelectionParams& params) {
  if (!(std::isfinite(params.epsilon) && params.epsilon > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon must be positive, got ", params.epsilon));
  }
  if (!(params.delta > 0 && params.delta < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("delta must be in (0, 1), got ", params.delta));
  }
  if (params.max_groups_per_subject < 1 || params.max_groups_per_subject > (int64_t{1} << 20)) {
    return absl::InvalidArgumentError("groups per subject must be in [1, 2^20]");
  }
  FEDSHARE_ASSIGN_OR_RETURN(
      DiscreteLaplace noise,
      DiscreteLaplace::Create(static_cast<double>(params.max_groups_per_subject) / params.epsilon));
  // Smallest k >= 1 with P(Y >= k) <= δ/L0; the tail is p^k / (1 + p).
  const double per_group = params.delta / static_cast<double>(params.max_groups_per_subject);
  const double p = std::exp(-1 / noise.scale());
  int64_t k = std::max<int64_t>(
      1, static_cast<int64_t>(std::ceil(std::log(per_group * (1 + p)) * -noise.scale())));
  while (noise.UpperTail(k) > per_group) ++k;  // guard against rounding in the estimate
  return PartitionSelector(noise, 1 + k);
}

double PartitionSelector::KeepProbability(int64_t subjects) const {
  if (subjects <= 0) return 0;
  const int64_t need = threshold_ - subjects;             // keep iff Y >= need
  if (need <= 0) return 1 - noise_.UpperTail(-need + 1);  // P(Y >= need) = 1 - P(Y >= 1 - need)
  return noise_.UpperTail(need);
}

absl::StatusOr<bool> PartitionSelector::ShouldKeep(int64_t subjects, RandomSource& rng) const {
  if (subjects <= 0) return false;
  FEDSHARE_ASSIGN_OR_RETURN(int64_t y, noise_.Sample(rng));
  return subjects + y >= threshold_;
}

}  // namespace fedshare::policy
