// Secure noise for differential privacy (DESIGN §8), in the spirit of the
// "secure noise generation" of Google's DP library: a value is snapped to a
// power-of-two grid and the noise is an integer number of grid steps drawn
// from a discrete Laplace distribution, sampled exactly from uniform random
// bits (Canonne, Kamath and Steinke 2020, Algorithm 2) with integer
// arithmetic only. Nothing here samples a floating-point distribution, so the
// low bits of a release reveal nothing about the true value (Mironov 2012).
//
//   FEDSHARE_ASSIGN_OR_RETURN(NoisyRelease r,
//       AddSecureNoise(42, {.sensitivity = 1, .epsilon = 0.5, .integer_valued = true}, rng));
//   // r.value is 42 plus discrete Laplace noise of scale r.laplace_scale;
//   // r.ci_low <= 42 <= r.ci_high with probability >= 0.95.
#ifndef FEDSHARE_POLICY_DP_NOISE_H_
#define FEDSHARE_POLICY_DP_NOISE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "policy/dp_random.h"

namespace fedshare::policy {

// The grid's resolution: the noise scale divided by this, rounded up to a
// power of two, is the granularity, so a release keeps about 40 bits of noise
// below its scale.
inline constexpr int kGranularityBits = 40;

// Scales in grid steps outside this range are refused (an ε/sensitivity
// ratio above 2^20 protects nothing; a scale above 2^50 steps cannot occur).
inline constexpr double kMinStepScale = 0x1p-20;
inline constexpr double kMaxStepScale = 0x1p50;

// The discrete Laplace distribution on the integers: P(k) ∝ exp(-|k| / scale).
class DiscreteLaplace {
 public:
  // INVALID_ARGUMENT unless kMinStepScale <= scale <= kMaxStepScale. The scale
  // is rounded up (never down: more noise, never less) to a 32-bit mantissa so
  // that the sampler's integers stay small.
  static absl::StatusOr<DiscreteLaplace> Create(double scale);

  // The scale actually used (>= the one asked for).
  double scale() const { return scale_; }
  // Standard deviation: sqrt(2p) / (1 - p), p = exp(-1/scale).
  double StdDev() const;
  // P(Y >= k), for k >= 1: p^k / (1 + p).
  double UpperTail(int64_t k) const;
  // The smallest k >= 0 with P(|Y| <= k) >= coverage. REQUIRES: 0 < coverage < 1.
  int64_t HalfWidth(double coverage) const;

  // One exact sample. INTERNAL if the random source fails.
  absl::StatusOr<int64_t> Sample(RandomSource& rng) const;

 private:
  DiscreteLaplace(double scale, uint64_t numerator, uint64_t denominator)
      : scale_(scale), numerator_(numerator), denominator_(denominator) {}

  double scale_;
  uint64_t numerator_;    // scale_ == numerator_ / denominator_, exactly
  uint64_t denominator_;  // a power of two
};

// The smallest power of two >= laplace_scale / 2^kGranularityBits; at least 1
// when the value is integer-valued. REQUIRES: laplace_scale > 0 and finite.
double NoiseGranularity(double laplace_scale, bool integer_valued);

struct LaplaceParams {
  // L1 sensitivity of the value: the most one subject can change it (after
  // contribution bounding and clamping).
  double sensitivity = 1;
  double epsilon = 1;
  // The value and the sensitivity are integers (counts): the grid is then at
  // least 1 and a release is an integer.
  bool integer_valued = false;
};

// One released value and what the asker needs to judge it.
struct NoisyRelease {
  double value = 0;        // on the grid: an integer multiple of granularity
  double granularity = 0;  // the grid (0 for a value derived from others)
  // The Laplace scale b = (sensitivity + snapping) / ε actually applied, in
  // the value's unit (0 for a derived value).
  double laplace_scale = 0;
  double stddev = 0;  // of the noise; for a derived value, an approximation
  // An interval around `value` that holds the true value with probability at
  // least 0.95 (over the noise).
  double ci_low = 0;
  double ci_high = 0;
  double epsilon = 0;  // spent on this value
  // How far snapping may have moved the true value (granularity / 2; 0 for a
  // count on a grid of 1); included in the interval.
  double snapping = 0;
};

// Releases x + noise under ε-DP for the given sensitivity. The value is
// snapped to the grid (round half away from zero); snapping can move a
// neighbour's value by up to one more step, so unless the value is an integer
// on a grid of 1 the scale uses sensitivity + granularity. INVALID_ARGUMENT if
// x, sensitivity or ε is not finite, sensitivity or ε is not positive, or an
// integer-valued x or sensitivity is not an integer.
absl::StatusOr<NoisyRelease> AddSecureNoise(double x, const LaplaceParams& params,
                                            RandomSource& rng);

// Half-width of the interval around a (non-derived) release that holds the
// true value with probability >= coverage. REQUIRES: release.granularity > 0.
double IntervalHalfWidth(const NoisyRelease& release, double coverage);

}  // namespace fedshare::policy

#endif  // FEDSHARE_POLICY_DP_NOISE_H_
