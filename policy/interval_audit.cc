#include "policy/interval_audit.h"

#include <coin/Clp_C_Interface.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace fedshare::policy {
namespace {

// CLP's problem status codes (Clp_C_Interface.h, Clp_status).
constexpr int kClpOptimal = 0;
constexpr int kClpDualInfeasible = 2;  // the objective is unbounded

// Simplex iterations per bound; the programs are small (one variable per
// withheld cell), so hitting this means something is wrong: fail closed.
constexpr int kMaxIterations = 100000;

struct ModelDeleter {
  void operator()(Clp_Simplex* m) const { Clp_deleteModel(m); }
};

}  // namespace

absl::StatusOr<std::vector<Interval>> FeasibleIntervals(int n, absl::Span<const KnownSum> known) {
  std::vector<Interval> out(static_cast<size_t>(std::max(n, 0)));
  if (n <= 0) return out;
  // Column-major constraint matrix: column i lists the sums x_i appears in.
  std::vector<std::vector<int>> rows_of(out.size());
  std::vector<double> rhs;
  for (const KnownSum& sum : known) {
    const int row = static_cast<int>(rhs.size());
    for (int v : sum.vars) {
      if (v < 0 || v >= n) {
        return absl::InvalidArgumentError(absl::StrCat("interval audit: index ", v, " of ", n));
      }
      rows_of[v].push_back(row);
    }
    rhs.push_back(sum.total);
  }
  std::vector<CoinBigIndex> start = {0};
  std::vector<int> index;
  for (const std::vector<int>& rows : rows_of) {
    index.insert(index.end(), rows.begin(), rows.end());
    start.push_back(static_cast<CoinBigIndex>(index.size()));
  }
  const std::vector<double> value(index.size(), 1.0);
  const std::vector<double> col_lo(out.size(), 0.0);
  std::vector<double> obj(out.size(), 0.0);

  std::unique_ptr<Clp_Simplex, ModelDeleter> model(Clp_newModel());
  Clp_setLogLevel(model.get(), 0);
  Clp_setMaximumIterations(model.get(), kMaxIterations);
  Clp_loadProblem(model.get(), n, static_cast<int>(rhs.size()), start.data(), index.data(),
                  value.data(), col_lo.data(), nullptr, obj.data(), rhs.data(), rhs.data());
  for (int i = 0; i < n; ++i) {
    if (rows_of[i].empty()) continue;  // in no known sum: [0, +inf)
    obj.assign(out.size(), 0.0);
    obj[i] = 1.0;
    Clp_chgObjCoefficients(model.get(), obj.data());
    for (double sense : {1.0, -1.0}) {
      Clp_setObjSense(model.get(), sense);
      Clp_primal(model.get(), 0);
      const int status = Clp_status(model.get());
      if (status == kClpDualInfeasible && sense < 0) {
        out[i].hi = std::numeric_limits<double>::infinity();
        continue;
      }
      if (status != kClpOptimal) {
        return absl::InternalError(absl::StrCat(
            "interval audit: the linear program did not solve (CLP status ", status, ")"));
      }
      const double x = Clp_getColSolution(model.get())[i];
      (sense > 0 ? out[i].lo : out[i].hi) = x;
    }
  }
  return out;
}

}  // namespace fedshare::policy
