// DP partition selection (DESIGN §8): whether a group whose key is not
// declared public may appear in an answer at all, so that a rare group's
// existence is not disclosed.
//
// Laplace thresholding on the integers: a group with n distinct subjects
// (after bounding each subject to L0 groups) is kept iff n + Y >= threshold,
// Y discrete Laplace of scale L0/ε, where the threshold is the smallest
// integer for which a group held by one subject is kept with probability at
// most δ/L0. A subject changes at most L0 groups' n by one each, so the
// selection is (ε, δ)-DP: ε for the groups present with or without it, δ for
// the at most L0 groups that exist only because of it.
//
//   FEDSHARE_ASSIGN_OR_RETURN(auto selector, PartitionSelector::Create(
//       {.epsilon = 0.1, .delta = 1e-6, .max_groups_per_subject = 1}));
//   FEDSHARE_ASSIGN_OR_RETURN(bool keep, selector.ShouldKeep(cell.subjects, rng));
//
// The noisy n is used only for the decision; a kept group's values get their
// own noise and ε.
#ifndef FEDSHARE_POLICY_DP_PARTITION_H_
#define FEDSHARE_POLICY_DP_PARTITION_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "policy/dp_noise.h"
#include "policy/dp_random.h"

namespace fedshare::policy {

struct PartitionSelectionParams {
  double epsilon = 1;
  double delta = 1e-6;
  int64_t max_groups_per_subject = 1;  // L0
};

class PartitionSelector {
 public:
  // INVALID_ARGUMENT unless ε > 0, 0 < δ < 1 and 1 <= L0 <= 2^20.
  static absl::StatusOr<PartitionSelector> Create(const PartitionSelectionParams& params);

  // Groups with at least this many subjects plus noise are kept.
  int64_t threshold() const { return threshold_; }
  // The probability that a group with `subjects` distinct subjects is kept.
  double KeepProbability(int64_t subjects) const;
  // One decision. An empty group (subjects == 0) is never kept.
  absl::StatusOr<bool> ShouldKeep(int64_t subjects, RandomSource& rng) const;

 private:
  PartitionSelector(DiscreteLaplace noise, int64_t threshold)
      : noise_(noise), threshold_(threshold) {}

  DiscreteLaplace noise_;
  int64_t threshold_;
};

}  // namespace fedshare::policy

#endif  // FEDSHARE_POLICY_DP_PARTITION_H_
