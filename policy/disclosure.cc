#include "policy/disclosure.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "policy/interval_audit.h"

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

// The people of several cells taken together, as a total minus the released
// cells would reveal them: the union of their subjects, and per aggregate each
// person's contributions summed across the cells. A cell without subject sets
// (figures the engine did not supply) makes the pool conservative: its
// people are assumed to be people already counted, and each cell's largest
// contributors are assumed to be the same people.
class PeoplePool {
 public:
  explicit PeoplePool(const v1::AggregateQuery& query)
      : n_aggs_(static_cast<size_t>(query.aggregates_size())),
        bound_top_(n_aggs_),
        bound_total_(n_aggs_, 0.0) {}

  void Add(const CellStats& cell) {
    const bool exact =
        cell.subject_ordinals.size() == static_cast<size_t>(cell.subjects) &&
        cell.subject_contributions.size() ==
            cell.subject_ordinals.size() * cell.ContributionStride(n_aggs_) &&
        (cell.contribution_column.empty() ||
         (cell.contribution_column.size() == n_aggs_ &&
          std::all_of(cell.contribution_column.begin(), cell.contribution_column.end(),
                      [&](int32_t c) { return c < cell.contribution_columns; })));
    if (!exact) {
      exact_ = false;
      max_cell_subjects_ = std::max(max_cell_subjects_, cell.subjects);
    } else {
      for (size_t s = 0; s < cell.subject_ordinals.size(); ++s) {
        auto [it, inserted] = index_.try_emplace(cell.subject_ordinals[s], people_);
        if (inserted) {
          ++people_;
          sums_.resize(people_ * n_aggs_, 0.0);
        }
        for (size_t a = 0; a < n_aggs_; ++a) {
          sums_[it->second * n_aggs_ + a] += cell.Contribution(s, a, n_aggs_);
        }
      }
    }
    // Bounds that hold whatever the overlap: the largest n people of the pool
    // hold at most the sum of each cell's largest n.
    for (size_t a = 0; a < n_aggs_; ++a) {
      if (a >= cell.top_contributions.size() || a >= cell.abs_totals.size()) {
        missing_figures_ = true;
        continue;
      }
      std::vector<double>& top = bound_top_[a];
      const std::vector<double>& add = cell.top_contributions[a];
      if (top.size() < add.size()) top.resize(add.size(), top.empty() ? 0.0 : top.back());
      double running = 0;
      for (size_t i = 0; i < add.size(); ++i) {
        running += add[i];
        top[i] += running;  // top[i]: bound on the largest i+1 people together
      }
      for (size_t i = add.size(); i < top.size(); ++i) top[i] += running;
      bound_total_[a] += cell.abs_totals[a];
    }
  }

  int64_t subjects() const { return std::max(static_cast<int64_t>(people_), max_cell_subjects_); }

  // Whether the pool could be released as a cell itself: at least k people
  // and no dominance. Only then does a total minus the released cells reveal
  // nothing the rules withheld.
  bool Safe(const DisclosureParams& params, const v1::AggregateQuery& query) const {
    if (subjects() < params.min_subjects) return false;
    for (size_t a = 0; a < n_aggs_; ++a) {
      if (DominanceApplies(query.aggregates(static_cast<int>(a)).kind()) && Dominated(params, a)) {
        return false;
      }
    }
    return true;
  }

 private:
  bool Dominated(const DisclosureParams& params, size_t a) const {
    if (missing_figures_) return true;
    if (!exact_) {
      for (const DisclosureParams::Dominance& rule : params.dominance) {
        if (rule.n <= 0 || bound_top_[a].empty()) continue;
        const size_t n = std::min(bound_top_[a].size(), static_cast<size_t>(rule.n));
        if (bound_top_[a][n - 1] > rule.percent / 100.0 * bound_total_[a]) return true;
      }
      return false;
    }
    std::vector<double> person(people_);
    double total = 0;
    for (size_t p = 0; p < people_; ++p) {
      person[p] = sums_[p * n_aggs_ + a];
      total += person[p];
    }
    const size_t top_n = std::min(person.size(), static_cast<size_t>(kMaxDominanceN));
    std::partial_sort(person.begin(), person.begin() + top_n, person.end(), std::greater<double>());
    for (const DisclosureParams::Dominance& rule : params.dominance) {
      const size_t n = std::min(top_n, static_cast<size_t>(std::max(rule.n, 0)));
      const double largest = std::accumulate(person.begin(), person.begin() + n, 0.0);
      if (largest > rule.percent / 100.0 * total) return true;
    }
    return false;
  }

  size_t n_aggs_;
  absl::flat_hash_map<uint32_t, size_t> index_;  // ordinal -> person
  size_t people_ = 0;
  std::vector<double> sums_;  // [person * n_aggs_ + a]
  bool exact_ = true;
  bool missing_figures_ = false;
  int64_t max_cell_subjects_ = 0;
  std::vector<std::vector<double>> bound_top_;
  std::vector<double> bound_total_;
};

// The margins of a grouping: for every proper subset of its group fields
// (none: the grand total), the cells sharing each combination of those
// fields' values. `lines` are the margins over all fields but one (for one
// field: the grand total).
struct Margins {
  std::vector<std::vector<size_t>> all;
  std::vector<std::vector<size_t>> lines;
  bool keys_ok = true;
};

Margins FindMargins(const v1::AggregateQuery& query, absl::Span<const CellStats> cells) {
  Margins m;
  const size_t dims = static_cast<size_t>(query.group_by_size());
  for (const CellStats& c : cells) {
    if (dims > 1 && c.key.size() != dims) m.keys_ok = false;
  }
  if (dims <= 1 || !m.keys_ok) {
    std::vector<size_t> every(cells.size());
    std::iota(every.begin(), every.end(), 0);
    m.all.push_back(every);
    m.lines.push_back(std::move(every));
    return m;
  }
  for (uint32_t kept = 0; kept + 1 < (1u << dims); ++kept) {
    std::map<std::string, std::vector<size_t>> groups;
    for (size_t c = 0; c < cells.size(); ++c) {
      std::string projection;
      for (size_t d = 0; d < dims; ++d) {
        if (kept & (1u << d))
          absl::StrAppend(&projection, cells[c].key[d].size(), ":", cells[c].key[d]);
      }
      groups[projection].push_back(c);
    }
    const bool is_line = static_cast<size_t>(__builtin_popcount(kept)) + 1 == dims;
    for (auto& [projection, members] : groups) {
      if (is_line) m.lines.push_back(members);
      m.all.push_back(std::move(members));
    }
  }
  return m;
}

// Pool protection over one set of cells (the grand total, or a margin line):
// while some of its cells are withheld and they, pooled, are not safe,
// withholds its smallest released cell (ties: first in order). Returns true
// if it withheld any.
bool ProtectPool(const DisclosureParams& params, const v1::AggregateQuery& query,
                 absl::Span<const CellStats> cells, const std::vector<size_t>& members,
                 std::vector<bool>& withheld, std::vector<CellVerdict>& verdicts,
                 absl::string_view rule) {
  PeoplePool pool(query);
  bool any = false;
  std::vector<size_t> order;
  for (size_t c : members) {
    if (withheld[c]) {
      pool.Add(cells[c]);
      any = true;
    } else {
      order.push_back(c);
    }
  }
  if (!any) return false;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return cells[a].subjects < cells[b].subjects; });
  bool changed = false;
  for (size_t c : order) {
    if (pool.Safe(params, query)) break;
    withheld[c] = true;
    verdicts[c].rule = std::string(rule);
    pool.Add(cells[c]);
    changed = true;
  }
  return changed;
}

// Grand-total and margin-line pooling, repeated until no set changes (adding
// a cell to one line can unsettle another).
void ProtectPools(const DisclosureParams& params, const v1::AggregateQuery& query,
                  absl::Span<const CellStats> cells, const Margins& margins,
                  std::vector<bool>& withheld, std::vector<CellVerdict>& verdicts) {
  std::vector<size_t> every(cells.size());
  std::iota(every.begin(), every.end(), 0);
  bool changed = true;
  while (changed) {
    changed = ProtectPool(params, query, cells, every, withheld, verdicts, kRuleSecondary);
    if (query.group_by_size() < 2) break;
    for (const std::vector<size_t>& line : margins.lines) {
      changed |= ProtectPool(params, query, cells, line, withheld, verdicts, kRuleMargin);
    }
  }
}

// The figures the interval audit protects: the people (COUNT) of every cell
// withheld by a primary rule, and, where it was withheld for dominance, each
// dominated aggregate's total of absolute contributions (SUM). A cell withheld
// only to protect others holds at least k people and passes dominance, so
// pinning it down reveals nothing the rules protect (as in tau-ARGUS, only
// sensitive cells need protection intervals); it still counts as unknown.
struct AuditedFigure {
  std::vector<double> value;  // per cell
  std::vector<bool> audited;  // per cell
  bool is_count = false;
};

std::vector<AuditedFigure> AuditedFigures(const DisclosureParams& params,
                                          const v1::AggregateQuery& query,
                                          absl::Span<const CellStats> cells,
                                          const std::vector<bool>& withheld,
                                          const std::vector<CellVerdict>& verdicts) {
  std::vector<AuditedFigure> figures;
  AuditedFigure count;
  count.is_count = true;
  for (size_t c = 0; c < cells.size(); ++c) {
    count.value.push_back(static_cast<double>(cells[c].subjects));
    count.audited.push_back(withheld[c] && (verdicts[c].rule == kRuleMinSubjects ||
                                            verdicts[c].rule == kRuleDominance));
  }
  figures.push_back(std::move(count));
  for (int a = 0; a < query.aggregates_size(); ++a) {
    if (!DominanceApplies(query.aggregates(a).kind())) continue;
    AuditedFigure sum;
    bool any = false;
    for (size_t c = 0; c < cells.size(); ++c) {
      const bool has = static_cast<size_t>(a) < cells[c].abs_totals.size();
      sum.value.push_back(has ? cells[c].abs_totals[a] : 0.0);
      const bool audited = withheld[c] && verdicts[c].rule == kRuleDominance &&
                           Dominated(params, cells[c], static_cast<size_t>(a));
      sum.audited.push_back(audited);
      any |= audited;
    }
    if (any) figures.push_back(std::move(sum));
  }
  return figures;
}

// Whether a feasible interval protects a value: a COUNT interval at least k
// wide; a SUM interval reaching 10% of the value below and above it.
bool Protects(const Interval& iv, double value, bool is_count, int64_t k) {
  constexpr double kTolerance = 1e-6;
  if (is_count) return iv.hi - iv.lo >= static_cast<double>(k) - kTolerance;
  const double margin = 0.1 * std::abs(value);
  return iv.lo <= value - margin + kTolerance && iv.hi >= value + margin - kTolerance;
}

// The first withheld cell that an attacker knowing the released cells and
// every releasable margin could pin down, or nullopt if none. A margin is
// releasable when its cells, pooled, pass the primary rules; a margin that is
// not is withheld by the lower-dimensional question itself. INTERNAL if a
// linear program fails.
absl::StatusOr<std::optional<size_t>> FirstUnprotected(const DisclosureParams& params,
                                                       const v1::AggregateQuery& query,
                                                       absl::Span<const CellStats> cells,
                                                       const Margins& margins,
                                                       const std::vector<bool>& withheld,
                                                       const std::vector<CellVerdict>& verdicts) {
  std::vector<int> var(cells.size(), -1);
  std::vector<size_t> cell_of;
  for (size_t c = 0; c < cells.size(); ++c) {
    if (!withheld[c]) continue;
    var[c] = static_cast<int>(cell_of.size());
    cell_of.push_back(c);
  }
  if (cell_of.empty()) return std::nullopt;
  std::vector<const std::vector<size_t>*> known;
  for (const std::vector<size_t>& margin : margins.all) {
    PeoplePool pool(query);
    bool touches = false;
    for (size_t c : margin) {
      pool.Add(cells[c]);
      touches |= withheld[c];
    }
    if (touches && pool.Safe(params, query)) known.push_back(&margin);
  }
  for (const AuditedFigure& figure : AuditedFigures(params, query, cells, withheld, verdicts)) {
    std::vector<KnownSum> sums;
    for (const std::vector<size_t>* margin : known) {
      KnownSum sum;
      for (size_t c : *margin) {
        if (!withheld[c]) continue;
        sum.vars.push_back(var[c]);
        sum.total += figure.value[c];
      }
      sums.push_back(std::move(sum));
    }
    absl::StatusOr<std::vector<Interval>> intervals =
        FeasibleIntervals(static_cast<int>(cell_of.size()), sums);
    if (!intervals.ok()) return intervals.status();
    for (size_t v = 0; v < cell_of.size(); ++v) {
      const size_t c = cell_of[v];
      if (figure.audited[c] &&
          !Protects((*intervals)[v], figure.value[c], figure.is_count, params.min_subjects)) {
        return c;
      }
    }
  }
  return std::nullopt;
}

// The released cell to withhold next for an unprotected cell: preferring one
// whose margin lines all hold withheld cells already (it closes a cycle of
// withheld cells, along which an attacker cannot tell them apart), then one
// sharing a line with the unprotected cell, then the smallest.
std::optional<size_t> NextToWithhold(absl::Span<const CellStats> cells, const Margins& margins,
                                     const std::vector<bool>& withheld, size_t unprotected) {
  std::vector<int> lines_with_withheld(cells.size(), 0);
  std::vector<bool> shares_line(cells.size(), false);
  for (const std::vector<size_t>& line : margins.lines) {
    bool any_withheld = false;
    bool has_target = false;
    for (size_t c : line) {
      any_withheld |= withheld[c];
      has_target |= c == unprotected;
    }
    for (size_t c : line) {
      lines_with_withheld[c] += any_withheld ? 1 : 0;
      if (has_target) shares_line[c] = true;
    }
  }
  auto better = [&](size_t a, size_t b) -> bool {
    if (lines_with_withheld[a] != lines_with_withheld[b]) {
      return lines_with_withheld[a] > lines_with_withheld[b];
    }
    if (shares_line[a] != shares_line[b]) return shares_line[a];
    return cells[a].subjects < cells[b].subjects;
  };
  std::optional<size_t> best;
  for (size_t c = 0; c < cells.size(); ++c) {
    if (withheld[c]) continue;
    if (!best || better(c, *best)) best = c;
  }
  return best;
}

// The attacker audit: withholds further cells until no withheld cell can be
// pinned down; if a linear program fails, withholds every cell (fail closed).
void AuditIntervals(const DisclosureParams& params, const v1::AggregateQuery& query,
                    absl::Span<const CellStats> cells, const Margins& margins,
                    std::vector<bool>& withheld, std::vector<CellVerdict>& verdicts) {
  for (;;) {
    absl::StatusOr<std::optional<size_t>> unprotected =
        FirstUnprotected(params, query, cells, margins, withheld, verdicts);
    std::optional<size_t> next;
    if (unprotected.ok()) {
      if (!unprotected->has_value()) return;
      next = NextToWithhold(cells, margins, withheld, **unprotected);
      if (!next) return;  // everything is withheld already
      withheld[*next] = true;
      verdicts[*next].rule = std::string(kRuleIntervalAudit);
      ProtectPools(params, query, cells, margins, withheld, verdicts);
      continue;
    }
    for (size_t c = 0; c < cells.size(); ++c) {
      if (withheld[c]) continue;
      withheld[c] = true;
      verdicts[c].rule = std::string(kRuleIntervalAudit);
    }
    return;
  }
}

// Histogram bins of a released cell: bins with 1..k-1 people are withheld,
// then, while the withheld bins hold fewer than k distinct people together,
// the smallest non-empty released bin too.
std::vector<int32_t> WithheldBins(const CellStats& cell, size_t a, int64_t k) {
  const std::vector<int64_t>& bins = cell.bin_subjects[a];
  const bool exact =
      a < cell.bin_subject_ordinals.size() && cell.bin_subject_ordinals[a].size() == bins.size();
  std::vector<bool> withheld(bins.size(), false);
  absl::flat_hash_set<uint32_t> people;
  int64_t max_bin = 0;  // without subject sets: the pool is at least its largest bin
  auto add = [&](size_t b) {
    withheld[b] = true;
    max_bin = std::max(max_bin, bins[b]);
    if (exact)
      people.insert(cell.bin_subject_ordinals[a][b].begin(), cell.bin_subject_ordinals[a][b].end());
  };
  auto pooled = [&] { return exact ? static_cast<int64_t>(people.size()) : max_bin; };
  bool any = false;
  for (size_t b = 0; b < bins.size(); ++b) {
    if (bins[b] > 0 && bins[b] < k) {
      add(b);
      any = true;
    }
  }
  if (any) {
    std::vector<size_t> order;
    for (size_t b = 0; b < bins.size(); ++b) {
      if (!withheld[b] && bins[b] > 0) order.push_back(b);
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t x, size_t y) { return bins[x] < bins[y]; });
    for (size_t b : order) {
      if (pooled() >= k) break;
      add(b);
    }
  }
  std::vector<int32_t> out;
  for (size_t b = 0; b < bins.size(); ++b) {
    if (withheld[b]) out.push_back(static_cast<int32_t>(b));
  }
  return out;
}

}  // namespace

std::vector<CellVerdict> ApplyCellRules(const DisclosureParams& params,
                                        const v1::AggregateQuery& query,
                                        absl::Span<const CellStats> cells) {
  const int64_t k = params.min_subjects;
  std::vector<CellVerdict> verdicts(cells.size());
  std::vector<bool> withheld(cells.size(), false);
  for (size_t c = 0; c < cells.size(); ++c) {
    const CellStats& cell = cells[c];
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
  const Margins margins = FindMargins(query, cells);
  if (!margins.keys_ok) {
    // Without group values the margins cannot be found: withhold everything.
    for (size_t c = 0; c < cells.size(); ++c) {
      if (!withheld[c]) verdicts[c].rule = std::string(kRuleMargin);
      withheld[c] = true;
    }
  }
  if (std::any_of(withheld.begin(), withheld.end(), [](bool w) { return w; })) {
    ProtectPools(params, query, cells, margins, withheld, verdicts);
    AuditIntervals(params, query, cells, margins, withheld, verdicts);
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
      v.withheld_bins[a] = WithheldBins(cells[c], static_cast<size_t>(a), k);
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
