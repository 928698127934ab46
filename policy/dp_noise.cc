#include "policy/dp_noise.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "node/common/status_macros.h"

namespace fedshare::policy {
namespace {

constexpr int kMantissaBits = 32;

absl::Status Overflow() {
  return absl::InternalError("discrete Laplace sampler overflowed (probability < 2^-60)");
}

// Bernoulli(exp(-num/den)) for 0 <= num <= den, exactly: CKS20 Algorithm 1.
// K counts successive Bernoulli(γ/K) successes; P(K odd) = exp(-γ).
absl::StatusOr<bool> BernoulliExpMinus(RandomSource& rng, uint64_t num, uint64_t den) {
  uint64_t k = 1;
  for (;;) {
    if (k > std::numeric_limits<uint64_t>::max() / den) return Overflow();
    FEDSHARE_ASSIGN_OR_RETURN(uint64_t u, rng.UniformBelow(den * k));
    if (u >= num) break;
    ++k;
  }
  return (k % 2) == 1;
}

}  // namespace

absl::StatusOr<DiscreteLaplace> DiscreteLaplace::Create(double scale) {
  if (!(scale >= kMinStepScale && scale <= kMaxStepScale)) {
    return absl::InvalidArgumentError(
        absl::StrCat("noise scale of ", scale, " grid steps is outside [2^-20, 2^50]"));
  }
  int exp = 0;
  const double m = std::frexp(scale, &exp);  // scale = m * 2^exp, m in [0.5, 1)
  uint64_t mantissa = static_cast<uint64_t>(std::ceil(std::ldexp(m, kMantissaBits)));
  int shift = exp - kMantissaBits;  // scale <= mantissa * 2^shift
  while (mantissa % 2 == 0 && mantissa > 1) {
    mantissa /= 2;
    ++shift;
  }
  uint64_t numerator = mantissa;
  uint64_t denominator = 1;
  if (shift >= 0) {
    numerator <<= shift;  // scale <= 2^50: numerator < 2^51
  } else {
    denominator <<= -shift;  // scale >= 2^-20: denominator <= 2^52
  }
  const double used = std::ldexp(static_cast<double>(mantissa), shift);
  return DiscreteLaplace(used, numerator, denominator);
}

double DiscreteLaplace::StdDev() const {
  const double p = std::exp(-1 / scale_);
  return std::sqrt(2 * p) / (1 - p);
}

double DiscreteLaplace::UpperTail(int64_t k) const {
  const double p = std::exp(-1 / scale_);
  return std::exp(-static_cast<double>(k) / scale_) / (1 + p);
}

int64_t DiscreteLaplace::HalfWidth(double coverage) const {
  // P(|Y| > k) = 2 p^(k+1) / (1 + p) <= 1 - coverage.
  const double p = std::exp(-1 / scale_);
  const double k1 = std::ceil(std::log((1 - coverage) * (1 + p) / 2) * -scale_);
  return std::max<int64_t>(0, static_cast<int64_t>(k1) - 1);
}

absl::StatusOr<int64_t> DiscreteLaplace::Sample(RandomSource& rng) const {
  // CKS20 Algorithm 2 with scale numerator_/denominator_: X = U + n*V is
  // geometric with P(X = x) ∝ exp(-x/n), so floor(X/d) is geometric with
  // P ∝ exp(-y d/n); a random sign, rejecting "-0", makes it two-sided.
  for (;;) {
    FEDSHARE_ASSIGN_OR_RETURN(uint64_t u, rng.UniformBelow(numerator_));
    FEDSHARE_ASSIGN_OR_RETURN(bool keep, BernoulliExpMinus(rng, u, numerator_));
    if (!keep) continue;
    uint64_t v = 0;
    for (;;) {
      FEDSHARE_ASSIGN_OR_RETURN(bool more, BernoulliExpMinus(rng, 1, 1));
      if (!more) break;
      ++v;
    }
    if (v > (uint64_t{1} << 62) / numerator_) return Overflow();
    const uint64_t y = (u + numerator_ * v) / denominator_;
    FEDSHARE_ASSIGN_OR_RETURN(bool negative, rng.NextBit());
    if (negative && y == 0) continue;
    return negative ? -static_cast<int64_t>(y) : static_cast<int64_t>(y);
  }
}

double NoiseGranularity(double laplace_scale, bool integer_valued) {
  const double target = std::ldexp(laplace_scale, -kGranularityBits);
  int exp = 0;
  const double m = std::frexp(target, &exp);  // target = m * 2^exp, m in [0.5, 1)
  double g = m == 0.5 ? std::ldexp(1.0, exp - 1) : std::ldexp(1.0, exp);
  if (integer_valued && g < 1) g = 1;
  return g;
}

absl::StatusOr<NoisyRelease> AddSecureNoise(double x, const LaplaceParams& params,
                                            RandomSource& rng) {
  if (!std::isfinite(x)) return absl::InvalidArgumentError("value to release is not finite");
  if (!(std::isfinite(params.epsilon) && params.epsilon > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon must be positive, got ", params.epsilon));
  }
  if (!(std::isfinite(params.sensitivity) && params.sensitivity > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sensitivity must be positive, got ", params.sensitivity));
  }
  if (params.integer_valued &&
      (x != std::trunc(x) || params.sensitivity != std::trunc(params.sensitivity))) {
    return absl::InvalidArgumentError(
        "an integer-valued release needs integer value and sensitivity");
  }
  const double g = NoiseGranularity(params.sensitivity / params.epsilon, params.integer_valued);
  const double snapped = std::round(x / g) * g;  // exact: g is a power of two
  const bool exact_on_grid = params.integer_valued && g == 1;
  const double sensitivity = exact_on_grid ? params.sensitivity : params.sensitivity + g;
  FEDSHARE_ASSIGN_OR_RETURN(DiscreteLaplace noise,
                            DiscreteLaplace::Create(sensitivity / params.epsilon / g));
  FEDSHARE_ASSIGN_OR_RETURN(int64_t steps, noise.Sample(rng));

  NoisyRelease r;
  // Correctly rounded: if the sum is too large to hold every grid point, the
  // rounding is a deterministic function of the exact noisy value (post-
  // processing), and a double that large is itself a multiple of g.
  r.value = snapped + static_cast<double>(steps) * g;
  r.granularity = g;
  r.laplace_scale = noise.scale() * g;
  r.stddev = noise.StdDev() * g;
  r.epsilon = params.epsilon;
  r.snapping = exact_on_grid ? 0 : g / 2;
  const double half = IntervalHalfWidth(r, 0.95);
  r.ci_low = r.value - half;
  r.ci_high = r.value + half;
  return r;
}

double IntervalHalfWidth(const NoisyRelease& release, double coverage) {
  auto noise = DiscreteLaplace::Create(release.laplace_scale / release.granularity);
  if (!noise.ok()) return std::numeric_limits<double>::infinity();
  return static_cast<double>(noise->HalfWidth(coverage)) * release.granularity + release.snapping;
}

}  // namespace fedshare::policy
