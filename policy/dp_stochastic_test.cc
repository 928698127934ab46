// A stochastic test of the ε-DP inequality, in the style of the stochastic
// tester of Google's DP library: run a mechanism many times on two
// neighbouring datasets D and D' (D' = D plus one subject at the worst place),
// histogram the outputs, and check, for every bin S and in both directions,
//
//   P[M(D) ∈ S] <= e^ε · P[M(D') ∈ S] + tolerance.
//
// Bins are post-processing, so a correct mechanism satisfies the inequality
// with tolerance 0; the tolerance absorbs sampling error of the estimated
// probabilities. With 10^5 draws per side and bin probabilities <= 0.5, the
// standard error of p̂ - e^ε p̂' is at most sqrt(0.25 / 10^5) · sqrt(1 + e^{2ε})
// <= 0.0046 for ε <= 1, so kTolerance = 0.025 is over 5 standard errors. The
// streams are seeded, so the test is deterministic; the tolerance is what
// makes its verdict meaningful.
//
// A test of the test: each mechanism is also run with a deliberate scaling
// bug (noise for 2ε while claiming ε: a forgotten ε split or contribution
// bound), and the same check must fail by a wide margin.

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "policy/dp_mechanisms.h"

namespace fedshare::policy {
namespace {

constexpr int kDraws = 100000;
constexpr double kTolerance = 0.025;

struct Bins {
  double lo;  // values below fall in bin 0
  double width;
  int count;  // values above fall in the last bin
  int Of(double v) const {
    const double i = std::floor((v - lo) / width);
    return static_cast<int>(std::clamp(i, 0.0, static_cast<double>(count - 1)));
  }
};

using Mechanism = std::function<double(RandomSource&)>;

std::vector<double> Distribution(const Mechanism& mechanism, const std::string& label,
                                 const Bins& bins) {
  auto rng = AesCtrStream::ForTest(label);
  std::vector<double> p(bins.count, 0);
  for (int i = 0; i < kDraws; ++i) p[bins.Of(mechanism(*rng))] += 1.0 / kDraws;
  return p;
}

// The largest violation of the ε-inequality over the bins, both directions.
double MaxViolation(const Mechanism& on_d, const Mechanism& on_d_prime, double epsilon,
                    const Bins& bins, const std::string& label) {
  const std::vector<double> p = Distribution(on_d, label + "/D", bins);
  const std::vector<double> q = Distribution(on_d_prime, label + "/D'", bins);
  double worst = -1;
  for (int i = 0; i < bins.count; ++i) {
    worst = std::max(worst, p[i] - std::exp(epsilon) * q[i]);
    worst = std::max(worst, q[i] - std::exp(epsilon) * p[i]);
  }
  return worst;
}

template <typename T>
T Value(absl::StatusOr<T> r) {
  EXPECT_OK(r.status());
  return r.ok() ? *std::move(r) : T{};
}

// COUNT(*) over a cell of 10 records vs. 12 (one subject with L∞ = 2 added).
Mechanism Count(int64_t count, double epsilon) {
  const DpParams params{.epsilon = epsilon,
                        .bounds = {.max_groups_per_subject = 1, .max_records_per_group = 2}};
  return [=](RandomSource& rng) { return Value(ReleaseCount(count, params, rng)).value; };
}

BoundedMoments Moments(const std::vector<double>& values) {
  BoundedMoments m(0, 10);
  for (double v : values) m.Add(v);
  return m;
}

Mechanism Sum(const std::vector<double>& values, double epsilon) {
  const BoundedMoments m = Moments(values);
  const DpParams params{.epsilon = epsilon, .bounds = {}};
  return [=](RandomSource& rng) { return Value(ReleaseSum(m, params, rng)).value; };
}

Mechanism Mean(const std::vector<double>& values, double epsilon) {
  const BoundedMoments m = Moments(values);
  const DpParams params{.epsilon = epsilon, .bounds = {}};
  return [=](RandomSource& rng) { return Value(ReleaseMean(m, params, rng)).mean.value; };
}

constexpr double kEpsilon = 1;
const std::vector<double> kD = {1, 3, 4};
const std::vector<double> kDPrime = {1, 3, 4, 10};           // plus one subject at the upper bound
const Bins kCountBins{.lo = -5.5, .width = 1, .count = 29};  // integers -5..23
const Bins kSumBins{.lo = -32, .width = 4, .count = 24};     // 8 ± 40, λ = 10
const Bins kMeanBins{.lo = 0, .width = 0.5, .count = 21};    // [0, 10] and 10 itself

TEST(DpStochasticTest, CountSatisfiesTheEpsilonInequality) {
  const double v =
      MaxViolation(Count(10, kEpsilon), Count(12, kEpsilon), kEpsilon, kCountBins, "count");
  RecordProperty("max_violation", std::to_string(v));
  EXPECT_LE(v, kTolerance);
}

TEST(DpStochasticTest, SumSatisfiesTheEpsilonInequality) {
  const double v =
      MaxViolation(Sum(kD, kEpsilon), Sum(kDPrime, kEpsilon), kEpsilon, kSumBins, "sum");
  RecordProperty("max_violation", std::to_string(v));
  EXPECT_LE(v, kTolerance);
}

TEST(DpStochasticTest, MeanSatisfiesTheEpsilonInequality) {
  const double v =
      MaxViolation(Mean(kD, kEpsilon), Mean(kDPrime, kEpsilon), kEpsilon, kMeanBins, "mean");
  RecordProperty("max_violation", std::to_string(v));
  EXPECT_LE(v, kTolerance);
}

// The test of the test: noise for 2ε, checked against the claimed ε.
TEST(DpStochasticTest, MisScaledCountFailsTheCheck) {
  const double v = MaxViolation(Count(10, 2 * kEpsilon), Count(12, 2 * kEpsilon), kEpsilon,
                                kCountBins, "count-misscaled");
  RecordProperty("max_violation", std::to_string(v));
  EXPECT_GT(v, 4 * kTolerance);
}

TEST(DpStochasticTest, MisScaledSumFailsTheCheck) {
  const double v = MaxViolation(Sum(kD, 2 * kEpsilon), Sum(kDPrime, 2 * kEpsilon), kEpsilon,
                                kSumBins, "sum-misscaled");
  RecordProperty("max_violation", std::to_string(v));
  EXPECT_GT(v, 2 * kTolerance);
}

TEST(DpStochasticTest, MisScaledMeanFailsTheCheck) {
  const double v = MaxViolation(Mean(kD, 2 * kEpsilon), Mean(kDPrime, 2 * kEpsilon), kEpsilon,
                                kMeanBins, "mean-misscaled");
  RecordProperty("max_violation", std::to_string(v));
  EXPECT_GT(v, 2 * kTolerance);
}

}  // namespace
}  // namespace fedshare::policy
