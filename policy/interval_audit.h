// What an attacker can infer about withheld figures from totals it knows.
//
// Unknown quantities x_0..x_{n-1} are non-negative; the attacker knows some
// sums of them exactly (a margin of a table minus its released cells). For a
// quantity, the feasible interval is [min x_i, max x_i] over every
// non-negative x satisfying all known sums: the attacker learns no more than
// that the true value lies in it. Each bound is a linear program, solved with
// COIN-OR CLP (the only place policy/ uses a solver).
//
// Usage:
//   std::vector<KnownSum> known = {{{0, 1}, 12.0}, {{1, 2}, 30.0}};
//   absl::StatusOr<std::vector<Interval>> iv = FeasibleIntervals(3, known);
//   // (*iv)[0] == {0, 12}
#ifndef FEDSHARE_POLICY_INTERVAL_AUDIT_H_
#define FEDSHARE_POLICY_INTERVAL_AUDIT_H_

#include <limits>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace fedshare::policy {

// sum of x[i] for i in vars == total. vars are distinct indices in [0, n).
struct KnownSum {
  std::vector<int> vars;
  double total = 0;
};

struct Interval {
  double lo = 0;
  double hi = std::numeric_limits<double>::infinity();  // +infinity: unbounded
};

// The feasible interval of each of the n quantities. REQUIRES: the known sums
// are consistent (some non-negative x satisfies them), as they are when taken
// from true figures. INTERNAL if a linear program cannot be solved (so the
// caller can fail closed); INVALID_ARGUMENT for an index out of range.
absl::StatusOr<std::vector<Interval>> FeasibleIntervals(int n, absl::Span<const KnownSum> known);

}  // namespace fedshare::policy

#endif  // FEDSHARE_POLICY_INTERVAL_AUDIT_H_
