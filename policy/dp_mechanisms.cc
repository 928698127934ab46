#include "policy/dp_mechanisms.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "node/common/status_macros.h"

namespace fedshare::policy {
namespace {

constexpr int64_t kMaxBound = int64_t{1} << 20;

// Keeps a uniformly random subset of at most `keep` of `items` (partial
// Fisher-Yates), in place.
template <typename T>
absl::Status KeepRandomSubset(std::vector<T>& items, int64_t keep, RandomSource& rng) {
  if (static_cast<int64_t>(items.size()) <= keep) return absl::OkStatus();
  for (size_t i = 0; i < static_cast<size_t>(keep); ++i) {
    FEDSHARE_ASSIGN_OR_RETURN(uint64_t j, rng.UniformBelow(items.size() - i));
    std::swap(items[i], items[i + j]);
  }
  items.resize(keep);
  return absl::OkStatus();
}

int64_t RecordBound(const DpParams& p) {
  return p.bounds.max_groups_per_subject * p.bounds.max_records_per_group;
}

struct Range {
  double lo;
  double hi;
};

// The range of a / b over a in [a_lo, a_hi], b in [b_lo, b_hi], b_lo > 0:
// a / b is monotone in each argument, so the corners bound it.
Range RatioRange(Range a, Range b) {
  const double c[4] = {a.lo / b.lo, a.lo / b.hi, a.hi / b.lo, a.hi / b.hi};
  return {*std::min_element(c, c + 4), *std::max_element(c, c + 4)};
}

Range Around(const NoisyRelease& r, double coverage) {
  const double half = IntervalHalfWidth(r, coverage);
  return {r.value - half, r.value + half};
}

NoisyRelease Derived(double value, double stddev, Range ci, double epsilon) {
  NoisyRelease r;
  r.value = value;
  r.stddev = stddev;
  r.ci_low = std::min(ci.lo, value);
  r.ci_high = std::max(ci.hi, value);
  r.epsilon = epsilon;
  return r;
}

}  // namespace

absl::Status ValidateDpParams(const DpParams& params) {
  if (!(std::isfinite(params.epsilon) && params.epsilon > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon must be positive, got ", params.epsilon));
  }
  const ContributionBounds& b = params.bounds;
  if (b.max_groups_per_subject < 1 || b.max_groups_per_subject > kMaxBound ||
      b.max_records_per_group < 1 || b.max_records_per_group > kMaxBound) {
    return absl::InvalidArgumentError(
        absl::StrCat("contribution bounds must be in [1, 2^20], got groups per subject ",
                     b.max_groups_per_subject, " and records per group ", b.max_records_per_group));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<bool>> SelectBoundedRecords(absl::Span<const RecordRef> records,
                                                       const ContributionBounds& bounds,
                                                       RandomSource& rng) {
  FEDSHARE_RETURN_IF_ERROR(ValidateDpParams({.epsilon = 1, .bounds = bounds}));
  // subject -> cell -> record indices, both ordered so draws are canonical.
  std::map<uint32_t, std::map<uint32_t, std::vector<size_t>>> by_subject;
  for (size_t i = 0; i < records.size(); ++i) {
    by_subject[records[i].subject][records[i].cell].push_back(i);
  }
  std::vector<bool> keep(records.size(), false);
  for (auto& [subject, cells] : by_subject) {
    std::vector<uint32_t> cell_ids;
    for (const auto& [cell, unused] : cells) cell_ids.push_back(cell);
    FEDSHARE_RETURN_IF_ERROR(KeepRandomSubset(cell_ids, bounds.max_groups_per_subject, rng));
    std::sort(cell_ids.begin(), cell_ids.end());
    for (uint32_t cell : cell_ids) {
      std::vector<size_t>& indices = cells[cell];
      FEDSHARE_RETURN_IF_ERROR(KeepRandomSubset(indices, bounds.max_records_per_group, rng));
      for (size_t i : indices) keep[i] = true;
    }
  }
  return keep;
}

void BoundedMoments::Add(double x) {
  const double v = std::isnan(x) ? lo_ : std::clamp(x, lo_, hi_);
  const double c = v - midpoint();
  ++count_;
  clamped_sum_ += v;
  centred_sum_ += c;
  centred_sum_sq_ += c * c;
}

absl::StatusOr<NoisyRelease> ReleaseCount(int64_t bounded_count, const DpParams& params,
                                          RandomSource& rng) {
  FEDSHARE_RETURN_IF_ERROR(ValidateDpParams(params));
  return AddSecureNoise(static_cast<double>(bounded_count),
                        {.sensitivity = static_cast<double>(RecordBound(params)),
                         .epsilon = params.epsilon,
                         .integer_valued = true},
                        rng);
}

absl::StatusOr<NoisyRelease> ReleaseDistinctCount(int64_t subjects, const DpParams& params,
                                                  RandomSource& rng) {
  FEDSHARE_RETURN_IF_ERROR(ValidateDpParams(params));
  return AddSecureNoise(static_cast<double>(subjects),
                        {.sensitivity = static_cast<double>(params.bounds.max_groups_per_subject),
                         .epsilon = params.epsilon,
                         .integer_valued = true},
                        rng);
}

absl::StatusOr<NoisyRelease> ReleaseSum(const BoundedMoments& moments, const DpParams& params,
                                        RandomSource& rng) {
  FEDSHARE_RETURN_IF_ERROR(ValidateDpParams(params));
  const double magnitude = std::max(std::abs(moments.lo()), std::abs(moments.hi()));
  if (magnitude == 0) {
    return absl::InvalidArgumentError("SUM over the bounds [0, 0] needs no noise and has no use");
  }
  return AddSecureNoise(moments.clamped_sum(),
                        {.sensitivity = static_cast<double>(RecordBound(params)) * magnitude,
                         .epsilon = params.epsilon},
                        rng);
}

namespace {

// The noisy record count and centred sum that AVG and VARIANCE both release,
// each with `eps` of the budget.
absl::Status NoisyCountAndCentredSum(const BoundedMoments& moments, const DpParams& params,
                                     double eps, RandomSource& rng, NoisyRelease* count,
                                     NoisyRelease* centred_sum) {
  const double records = static_cast<double>(RecordBound(params));
  const double half_range = (moments.hi() - moments.lo()) / 2;
  FEDSHARE_ASSIGN_OR_RETURN(
      *count,
      AddSecureNoise(static_cast<double>(moments.count()),
                     {.sensitivity = records, .epsilon = eps, .integer_valued = true}, rng));
  FEDSHARE_ASSIGN_OR_RETURN(
      *centred_sum, AddSecureNoise(moments.centred_sum(),
                                   {.sensitivity = records * half_range, .epsilon = eps}, rng));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<MeanRelease> ReleaseMean(const BoundedMoments& moments, const DpParams& params,
                                        RandomSource& rng) {
  FEDSHARE_RETURN_IF_ERROR(ValidateDpParams(params));
  const double half_range = (moments.hi() - moments.lo()) / 2;
  if (!(half_range > 0)) return absl::InvalidArgumentError("AVG needs bounds with lo < hi");
  MeanRelease out;
  FEDSHARE_RETURN_IF_ERROR(NoisyCountAndCentredSum(moments, params, params.epsilon / 2, rng,
                                                   &out.count, &out.centred_sum));

  const double c = std::max(1.0, out.count.value);
  const double s = out.centred_sum.value;
  const double mid = moments.midpoint();
  const double mean = std::clamp(mid + s / c, moments.lo(), moments.hi());
  const double stddev = std::sqrt(std::pow(out.centred_sum.stddev / c, 2) +
                                  std::pow(s * out.count.stddev / (c * c), 2));
  Range ci{moments.lo(), moments.hi()};
  const Range count_ci = Around(out.count, 0.975);
  if (count_ci.lo >= 1) {
    const Range ratio = RatioRange(Around(out.centred_sum, 0.975), count_ci);
    ci = {std::clamp(mid + ratio.lo, moments.lo(), moments.hi()),
          std::clamp(mid + ratio.hi, moments.lo(), moments.hi())};
  }
  out.mean = Derived(mean, stddev, ci, params.epsilon);
  return out;
}

absl::StatusOr<VarianceRelease> ReleaseVariance(const BoundedMoments& moments,
                                                const DpParams& params, RandomSource& rng) {
  FEDSHARE_RETURN_IF_ERROR(ValidateDpParams(params));
  const double half_range = (moments.hi() - moments.lo()) / 2;
  if (!(half_range > 0)) return absl::InvalidArgumentError("VARIANCE needs bounds with lo < hi");
  const double eps = params.epsilon / 3;
  const double records = static_cast<double>(RecordBound(params));
  VarianceRelease out;
  FEDSHARE_RETURN_IF_ERROR(
      NoisyCountAndCentredSum(moments, params, eps, rng, &out.count, &out.centred_sum));
  FEDSHARE_ASSIGN_OR_RETURN(
      out.centred_sum_sq,
      AddSecureNoise(moments.centred_sum_sq(),
                     {.sensitivity = records * half_range * half_range, .epsilon = eps}, rng));

  const double max_var = half_range * half_range;
  const double c = std::max(1.0, out.count.value);
  const double s = out.centred_sum.value;
  const double q = out.centred_sum_sq.value;
  const double var = std::clamp(q / c - (s / c) * (s / c), 0.0, max_var);
  // Delta method: f = Q/C - S²/C².
  const double d_q = 1 / c;
  const double d_s = -2 * s / (c * c);
  const double d_c = -q / (c * c) + 2 * s * s / (c * c * c);
  const double var_stddev =
      std::sqrt(std::pow(d_q * out.centred_sum_sq.stddev, 2) +
                std::pow(d_s * out.centred_sum.stddev, 2) + std::pow(d_c * out.count.stddev, 2));
  Range ci{0, max_var};
  constexpr double kPartCoverage = 1 - 0.05 / 3;
  const Range count_ci = Around(out.count, kPartCoverage);
  if (count_ci.lo >= 1) {
    const Range mean = RatioRange(Around(out.centred_sum, kPartCoverage), count_ci);
    const Range mean_sq{
        mean.lo <= 0 && mean.hi >= 0 ? 0 : std::min(mean.lo * mean.lo, mean.hi * mean.hi),
        std::max(mean.lo * mean.lo, mean.hi * mean.hi)};
    const Range second = RatioRange(Around(out.centred_sum_sq, kPartCoverage), count_ci);
    ci = {std::clamp(second.lo - mean_sq.hi, 0.0, max_var),
          std::clamp(second.hi - mean_sq.lo, 0.0, max_var)};
  }
  out.variance = Derived(var, var_stddev, ci, params.epsilon);
  const Range sd_ci{std::sqrt(out.variance.ci_low), std::sqrt(out.variance.ci_high)};
  // The stddev's spread is read off its interval (±1.96 σ for a normal).
  out.stddev = Derived(std::sqrt(var), (sd_ci.hi - sd_ci.lo) / (2 * 1.96), sd_ci, params.epsilon);
  return out;
}

absl::StatusOr<std::vector<NoisyRelease>> ReleaseHistogram(absl::Span<const int64_t> bin_counts,
                                                           const DpParams& params,
                                                           RandomSource& rng) {
  FEDSHARE_RETURN_IF_ERROR(ValidateDpParams(params));
  std::vector<NoisyRelease> bins;
  bins.reserve(bin_counts.size());
  for (int64_t count : bin_counts) {
    FEDSHARE_ASSIGN_OR_RETURN(NoisyRelease bin, ReleaseCount(count, params, rng));
    bins.push_back(bin);
  }
  return bins;
}

}  // namespace fedshare::policy
