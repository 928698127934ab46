#include "policy/disclosure.h"

#include <algorithm>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace fedshare::policy {
namespace {

bool DominanceApplies(v1::AggregateKind kind) {
  return kind == v1::SUM || kind == v1::AVG || kind == v1::STDDEV || kind == v1::VARIANCE;
}

// True if some rule finds the top contributors too dominant. Missing figures
// count as dominant: an error while deciding withholds.
bool Dominated(const DisclosureParams& params, const CellStats& cell, size_t agg) {
  if (agg >= cell.top_contributions.size() || agg >= cell.abs_totals.size()) return true;
  const std::vector<double>& top = cell.top_contributions[agg];
  const double total = cell.abs_totals[agg];
  for (const DisclosureParams::Dominance& rule : params.dominance) {
    const size_t n = std::min(top.size(), static_cast<size_t>(std::max(rule.n, 0)));
    const double largest = std::accumulate(top.begin(), top.begin() + n, 0.0);
    if (largest > rule.percent / 100.0 * total) return true;
  }
  return false;
}

// Withholds further items, smallest first among those not yet withheld and
// eligible, until the withheld ones hold at least k or none is left. Returns
// the indices newly withheld.
std::vector<size_t> Complement(const std::vector<int64_t>& sizes, std::vector<bool>& withheld,
                               const std::vector<bool>& eligible, int64_t k) {
  int64_t total = 0;
  bool any = false;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (withheld[i]) {
      total += sizes[i];
      any = true;
    }
  }
  std::vector<size_t> added;
  if (!any || total >= k) return added;
  std::vector<size_t> order;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (!withheld[i] && eligible[i]) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return sizes[a] < sizes[b]; });
  for (size_t i : order) {
    if (total >= k) break;
    withheld[i] = true;
    total += sizes[i];
    added.push_back(i);
  }
  return added;
}

// The withheld cells of a grouping taken together, as a separate total would
// reveal them: their subjects, and per aggregate the largest contributions
// and the total of absolute contributions.
CellStats Pool(const v1::AggregateQuery& query, absl::Span<const CellStats> cells,
               const std::vector<bool>& withheld) {
  const size_t n_aggs = static_cast<size_t>(query.aggregates_size());
  CellStats pool;
  pool.top_contributions.resize(n_aggs);
  pool.abs_totals.assign(n_aggs, 0.0);
  for (size_t c = 0; c < cells.size(); ++c) {
    if (!withheld[c]) continue;
    pool.subjects += cells[c].subjects;
    for (size_t a = 0; a < n_aggs; ++a) {
      if (a < cells[c].abs_totals.size()) pool.abs_totals[a] += cells[c].abs_totals[a];
      if (a < cells[c].top_contributions.size()) {
        const std::vector<double>& top = cells[c].top_contributions[a];
        pool.top_contributions[a].insert(pool.top_contributions[a].end(), top.begin(), top.end());
      }
    }
  }
  for (std::vector<double>& top : pool.top_contributions) {
    std::sort(top.begin(), top.end(), std::greater<double>());
    if (top.size() > static_cast<size_t>(kMaxDominanceN)) top.resize(kMaxDominanceN);
  }
  return pool;
}

// Whether the withheld cells, pooled, could be released themselves: at least k
// subjects and no dominance. Only then does subtracting the released cells
// from a separate total reveal nothing that the rules withheld.
bool PoolIsSafe(const DisclosureParams& params, const v1::AggregateQuery& query,
                const CellStats& pool) {
  if (pool.subjects < params.min_subjects) return false;
  for (int a = 0; a < query.aggregates_size(); ++a) {
    if (DominanceApplies(query.aggregates(a).kind()) &&
        Dominated(params, pool, static_cast<size_t>(a))) {
      return false;
    }
  }
  return true;
}

// Secondary suppression over cells: while any cell is withheld and the
// withheld cells pooled are not safe, withholds the smallest released cell
// (ties: first in order). Returns the indices newly withheld.
std::vector<size_t> ComplementCells(const DisclosureParams& params, const v1::AggregateQuery& query,
                                    absl::Span<const CellStats> cells,
                                    std::vector<bool>& withheld) {
  std::vector<size_t> added;
  if (std::none_of(withheld.begin(), withheld.end(), [](bool w) { return w; })) return added;
  std::vector<size_t> order;
  for (size_t i = 0; i < cells.size(); ++i) {
    if (!withheld[i]) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return cells[a].subjects < cells[b].subjects; });
  for (size_t i : order) {
    if (PoolIsSafe(params, query, Pool(query, cells, withheld))) break;
    withheld[i] = true;
    added.push_back(i);
  }
  return added;
}

}  // namespace

std::vector<CellVerdict> ApplyCellRules(const DisclosureParams& params,
                                        const v1::AggregateQuery& query,
                                        absl::Span<const CellStats> cells) {
  const int64_t k = params.min_subjects;
  std::vector<CellVerdict> verdicts(cells.size());
  std::vector<int64_t> sizes(cells.size());
  std::vector<bool> withheld(cells.size(), false);
  for (size_t c = 0; c < cells.size(); ++c) {
    const CellStats& cell = cells[c];
    sizes[c] = cell.subjects;
    if (cell.subjects < k) {
      verdicts[c].rule = std::string(kRuleMinSubjects);
      withheld[c] = true;
      continue;
    }
    for (int a = 0; a < query.aggregates_size(); ++a) {
      if (DominanceApplies(query.aggregates(a).kind()) &&
          Dominated(params, cell, static_cast<size_t>(a))) {
        verdicts[c].rule = std::string(kRuleDominance);
        withheld[c] = true;
        break;
      }
    }
  }
  for (size_t c : ComplementCells(params, query, cells, withheld)) {
    verdicts[c].rule = std::string(kRuleSecondary);
  }

  for (size_t c = 0; c < cells.size(); ++c) {
    CellVerdict& v = verdicts[c];
    v.released = !withheld[c];
    if (!v.released) continue;
    v.withheld_bins.resize(query.aggregates_size());
    for (int a = 0; a < query.aggregates_size(); ++a) {
      if (query.aggregates(a).kind() != v1::HISTOGRAM) continue;
      if (static_cast<size_t>(a) >= cells[c].bin_subjects.size()) {
        // No per-bin figures: nothing can show the bins are safe.
        for (int b = 0; b < query.aggregates(a).bins(); ++b) v.withheld_bins[a].push_back(b);
        continue;
      }
      const std::vector<int64_t>& bins = cells[c].bin_subjects[a];
      std::vector<bool> bin_withheld(bins.size()), nonzero(bins.size());
      for (size_t b = 0; b < bins.size(); ++b) {
        bin_withheld[b] = bins[b] > 0 && bins[b] < k;
        nonzero[b] = bins[b] > 0;
      }
      Complement(bins, bin_withheld, nonzero, k);
      for (size_t b = 0; b < bins.size(); ++b) {
        if (bin_withheld[b]) v.withheld_bins[a].push_back(static_cast<int32_t>(b));
      }
    }
  }
  return verdicts;
}

// --- predicate removal (issue 8, leak 1) ---------------------------------
namespace {

absl::Status PredicateRemovalRefusal(const v1::AggregateQuery& query, size_t predicate) {
  return absl::PermissionDeniedError(absl::StrCat(
      "refused by rule '", kRulePredicateRemoval, "': the filter on '",
      query.where(static_cast<int>(predicate)).field(),
      "' excludes records of a handful of subjects, which could reveal them by comparison with "
      "the unfiltered answer: widen the filter or remove it"));
}

bool IsHandful(const DisclosureParams& params, int64_t subjects) {
  return subjects > 0 && subjects < params.min_subjects;
}

}  // namespace

absl::Status CheckPredicateRemovals(const DisclosureParams& params, const v1::AggregateQuery& query,
                                    absl::Span<const int64_t> removed) {
  if (removed.size() != static_cast<size_t>(query.where_size())) {
    return absl::InternalError(absl::StrCat("predicate-removal check got ", removed.size(),
                                            " figures for ", query.where_size(), " filters"));
  }
  for (size_t i = 0; i < removed.size(); ++i) {
    if (removed[i] < 0) {
      return absl::InternalError("predicate-removal check got a negative figure");
    }
    if (IsHandful(params, removed[i])) return PredicateRemovalRefusal(query, i);
  }
  return absl::OkStatus();
}

absl::Status CheckPredicateCellRemovals(const DisclosureParams& params,
                                        const v1::AggregateQuery& query,
                                        absl::Span<const std::vector<int64_t>> dropped) {
  if (dropped.size() != static_cast<size_t>(query.where_size())) {
    return absl::InternalError(absl::StrCat("predicate-removal check got ", dropped.size(),
                                            " predicates for ", query.where_size(), " filters"));
  }
  for (size_t i = 0; i < dropped.size(); ++i) {
    for (int64_t subjects : dropped[i]) {
      if (subjects < 0) {
        return absl::InternalError("predicate-removal check got a negative figure");
      }
      if (IsHandful(params, subjects)) return PredicateRemovalRefusal(query, i);
    }
  }
  return absl::OkStatus();
}
// --- end predicate removal --------------------------------------------------

}  // namespace fedshare::policy
