// Differentially private aggregates (DESIGN §8): pure ε-DP releases of the
// figures a bounded scan computed, with secure noise (policy/dp_noise.h).
//
// Contribution bounds make the sensitivity finite: the scan keeps, per
// subject, at most `max_groups_per_subject` cells (L0) and, within each kept
// cell, at most `max_records_per_group` records (L∞), and clamps every measure
// to its declared [lo, hi]. Each cell then gets noise for the L1 sensitivity
// of the whole table, so one question's releases together are ε-DP with the ε
// passed here (per aggregate; a question's cost is the sum over its
// aggregates, plus partition selection when it applies).
//
//   DpParams p{.epsilon = 0.5, .bounds = {.max_groups_per_subject = 1,
//                                         .max_records_per_group = 3}};
//   BoundedMoments m(0, 100);
//   for (double x : cell_values) m.Add(x);
//   FEDSHARE_ASSIGN_OR_RETURN(MeanRelease avg, ReleaseMean(m, p, rng));
//
// Releases for one question must draw from one RandomSource in a canonical
// order (cells by key, aggregates in query order) so that a seeded stream
// reproduces the answer.
#ifndef FEDSHARE_POLICY_DP_MECHANISMS_H_
#define FEDSHARE_POLICY_DP_MECHANISMS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "policy/dp_noise.h"
#include "policy/dp_random.h"

namespace fedshare::policy {

struct ContributionBounds {
  int64_t max_groups_per_subject = 1;  // L0
  int64_t max_records_per_group = 1;   // L∞, per subject and cell
};

struct DpParams {
  double epsilon = 1;
  ContributionBounds bounds;
};

// INVALID_ARGUMENT unless ε is positive and finite and both bounds are in
// [1, 2^20].
absl::Status ValidateDpParams(const DpParams& params);

// One record as the scan sees it: who it is about and which cell it falls in.
struct RecordRef {
  uint32_t subject = 0;  // node-local subject ordinal
  uint32_t cell = 0;     // index of the cell (group) in the answer
};

// Contribution bounding: which records to keep. Per subject, a uniformly
// random set of at most L0 of its cells; within each, a uniformly random set
// of at most L∞ of its records. A subject's choice depends only on its own
// records and the random stream, so a neighbouring dataset changes only that
// subject's kept records. Draws in (subject, cell) order. Returns one flag per
// record.
absl::StatusOr<std::vector<bool>> SelectBoundedRecords(absl::Span<const RecordRef> records,
                                                       const ContributionBounds& bounds,
                                                       RandomSource& rng);

// Clamped, centred moments of one cell's measure over its kept records.
class BoundedMoments {
 public:
  // REQUIRES: lo <= hi, both finite.
  BoundedMoments(double lo, double hi) : lo_(lo), hi_(hi) {}

  // Adds clamp(x, lo, hi); a NaN counts as lo.
  void Add(double x);

  double lo() const { return lo_; }
  double hi() const { return hi_; }
  double midpoint() const { return lo_ + (hi_ - lo_) / 2; }
  int64_t count() const { return count_; }
  double clamped_sum() const { return clamped_sum_; }
  double centred_sum() const { return centred_sum_; }        // Σ (x - mid)
  double centred_sum_sq() const { return centred_sum_sq_; }  // Σ (x - mid)^2

 private:
  double lo_;
  double hi_;
  int64_t count_ = 0;
  double clamped_sum_ = 0;
  double centred_sum_ = 0;
  double centred_sum_sq_ = 0;
};

// COUNT(*): sensitivity L0 * L∞. An integer on a grid of (at least) 1.
absl::StatusOr<NoisyRelease> ReleaseCount(int64_t bounded_count, const DpParams& params,
                                          RandomSource& rng);

// COUNT(DISTINCT subject): sensitivity L0.
absl::StatusOr<NoisyRelease> ReleaseDistinctCount(int64_t subjects, const DpParams& params,
                                                  RandomSource& rng);

// SUM of a measure clamped to [lo, hi]: sensitivity L0 * L∞ * max(|lo|, |hi|).
absl::StatusOr<NoisyRelease> ReleaseSum(const BoundedMoments& moments, const DpParams& params,
                                        RandomSource& rng);

struct MeanRelease {
  // mid + noisy centred sum / max(1, noisy count), clamped to [lo, hi]. Its
  // interval is the range of that ratio over both parts' 97.5% intervals (so
  // at least 95% by the union bound), intersected with [lo, hi]; stddev is the
  // delta-method approximation.
  NoisyRelease mean;
  NoisyRelease count;        // ε/2, sensitivity L0 * L∞
  NoisyRelease centred_sum;  // ε/2, sensitivity L0 * L∞ * (hi - lo) / 2
};

// AVG: ε split evenly between a noisy count and a noisy centred sum.
absl::StatusOr<MeanRelease> ReleaseMean(const BoundedMoments& moments, const DpParams& params,
                                        RandomSource& rng);

struct VarianceRelease {
  // Population variance Q/C - (S/C)^2 of the clamped values, from the noisy
  // parts, clamped to [0, ((hi - lo) / 2)^2]; interval from the parts' 98.33%
  // intervals (union bound: >= 95%).
  NoisyRelease variance;
  NoisyRelease stddev;          // square roots of the variance and of its interval
  NoisyRelease count;           // ε/3
  NoisyRelease centred_sum;     // ε/3
  NoisyRelease centred_sum_sq;  // ε/3, sensitivity L0 * L∞ * ((hi - lo) / 2)^2
};

// VARIANCE and STDDEV (one release serves both): ε split in three.
absl::StatusOr<VarianceRelease> ReleaseVariance(const BoundedMoments& moments,
                                                const DpParams& params, RandomSource& rng);

// HISTOGRAM: each bin's record count with noise for sensitivity L0 * L∞ (a
// record falls in one bin, so the L1 change over all bins is that bound); the
// whole histogram costs ε.
absl::StatusOr<std::vector<NoisyRelease>> ReleaseHistogram(absl::Span<const int64_t> bin_counts,
                                                           const DpParams& params,
                                                           RandomSource& rng);

}  // namespace fedshare::policy

#endif  // FEDSHARE_POLICY_DP_MECHANISMS_H_
