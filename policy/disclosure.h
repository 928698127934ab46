// Exact-mode disclosure control (DESIGN §8). Pure functions over the figures
// the engine computed; they decide which cells and bins may be released.
//
// A pool of cells counts the union of their distinct people (by
// subject_ordinals) and tests dominance on each person's contributions summed
// across the pooled cells (subject_contributions). Without subject sets for a
// cell, the pool is conservative: people are assumed to overlap as much as
// they can, and each cell's largest contributors to be the same people.
//
// Per grouping, in order:
//   1. min-subjects: fewer than k distinct subjects -> withheld.
//   2. dominance: for SUM, AVG, STDDEV and VARIANCE aggregates, if the largest
//      n subjects' absolute contributions exceed percent% of the total of all
//      subjects' absolute contributions, for any rule (n, percent) -> withheld.
//   3. secondary-suppression: if any cell is withheld, the withheld cells are
//      pooled (what a separate total minus the released cells would reveal)
//      and, while the pool holds fewer than k people or fails a dominance
//      rule, further released cells are withheld, smallest subject count first
//      (ties: first in order).
//   4. margin-suppression, when grouping by 2 or more fields: the same for
//      each margin line (the cells sharing the values of all group fields but
//      one), since the same question grouped by fewer fields reveals the
//      line's total. Steps 3 and 4 repeat until no pool changes.
//   5. interval-audit: the attacker's linear program. Unknowns: the withheld
//      cells, non-negative. Known: the released cells and every margin (every
//      grouping by a proper subset of the fields, the grand total included)
//      whose cells pooled pass min-subjects and dominance. For each cell
//      withheld by rule 1 or 2, the feasible interval of its subject count
//      must be at least k wide; for each cell withheld by rule 2, that of each
//      dominated aggregate's total absolute contribution must reach 10% of
//      the true value below and above it. While a cell is unprotected, one
//      more cell is withheld (preferring cells whose margin lines already hold
//      withheld cells, then cells in a line with the unprotected one, then the
//      smallest) and steps 3-5 run again. If a linear program cannot be
//      solved, every cell is withheld (fail closed).
// Within a released cell, each HISTOGRAM bin with 1..k-1 subjects is withheld
// (reported as 0 and listed), rule histogram-bin; and, as in step 3, while the
// withheld bins hold fewer than k distinct people together (by
// bin_subject_ordinals), further non-empty bins are withheld, smallest first,
// so the cell's total cannot reveal them.
//
// Not covered: combinations of questions that are not margins of one another
// (different filters on different fields; several lower-dimensional
// questions against a finer table), and histogram bins of withheld cells
// against margin histograms (docs/privacy-model.md).
#ifndef FEDSHARE_POLICY_DISCLOSURE_H_
#define FEDSHARE_POLICY_DISCLOSURE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "fedshare/v1/query.pb.h"
#include "policy/agreement.h"

namespace fedshare::policy {

inline constexpr absl::string_view kRuleMinSubjects = "min-subjects";
inline constexpr absl::string_view kRuleDominance = "dominance";
inline constexpr absl::string_view kRuleSecondary = "secondary-suppression";
inline constexpr absl::string_view kRuleMargin = "margin-suppression";
inline constexpr absl::string_view kRuleIntervalAudit = "interval-audit";
inline constexpr absl::string_view kRuleHistogramBin = "histogram-bin";
inline constexpr absl::string_view kRulePredicateRemoval = "predicate-removal";
inline constexpr absl::string_view kRuleRepeatLimit = "repeat-limit";

// The largest n of any dominance rule the engine must keep contributions for.
inline constexpr int kMaxDominanceN = 5;

// What the engine measured in one cell.
struct CellStats {
  int64_t subjects = 0;  // distinct subjects with a counted record in the cell
  // Per aggregate, in query order (empty vectors for aggregates it does not
  // apply to):
  // the largest per-subject absolute contributions, descending, at most
  // kMaxDominanceN of them;
  std::vector<std::vector<double>> top_contributions;
  // the total of every subject's absolute contribution;
  std::vector<double> abs_totals;
  // for HISTOGRAM, distinct subjects per bin.
  std::vector<std::vector<int64_t>> bin_subjects;

  // Who is in the cell, so that pools count the union of people rather than
  // person-cells. Node-local subject ordinals, ascending, one per distinct
  // subject counted in `subjects` (subject_ordinals.size() == subjects).
  std::vector<uint32_t> subject_ordinals;
  // Each subject's absolute contributions, row-major by subject in
  // subject_ordinals order, one column per contribution column (below):
  // [s * columns + column]. Read them with Contribution().
  std::vector<double> subject_contributions;
  // Per aggregate, its column of subject_contributions, or -1 for aggregates
  // without dominance (COUNT, COUNT_SUBJECTS, HISTOGRAM), whose contributions
  // are zero. Aggregates over one field may share a column (SUM and AVG of
  // it add the same magnitudes), which keeps one value per subject and field
  // instead of one per aggregate. Empty: a column per aggregate, [s *
  // n_aggregates + a], zero for aggregates without dominance.
  std::vector<int32_t> contribution_column;
  int32_t contribution_columns = 0;  // with contribution_column: values per subject

  // Values per subject in subject_contributions for a question of
  // `n_aggregates` aggregates.
  size_t ContributionStride(size_t n_aggregates) const {
    return contribution_column.empty() ? n_aggregates
                                       : static_cast<size_t>(contribution_columns);
  }
  // Subject s's (in subject_ordinals order) absolute contribution to
  // aggregate a. REQUIRES: subject_contributions holds s's row.
  double Contribution(size_t s, size_t a, size_t n_aggregates) const {
    if (contribution_column.empty()) return subject_contributions[s * n_aggregates + a];
    const int32_t column = a < contribution_column.size() ? contribution_column[a] : -1;
    return column < 0 ? 0.0
                      : subject_contributions[s * static_cast<size_t>(contribution_columns) +
                                              static_cast<size_t>(column)];
  }
  // For HISTOGRAM aggregates: per aggregate, per bin, the ordinals of the
  // subjects with a counted record in that bin, ascending (empty vectors for
  // other aggregates).
  std::vector<std::vector<std::vector<uint32_t>>> bin_subject_ordinals;

  // The cell's group values in group_by order, each encoded so that equal
  // values give equal strings (e.g. a serialized v1::Value); empty without
  // GROUP BY. Margin protection uses them to find the cells of each margin.
  std::vector<std::string> key;
};

struct CellVerdict {
  bool released = false;
  std::string rule;  // why withheld; empty when released
  // Per aggregate: HISTOGRAM bins withheld in a released cell.
  std::vector<std::vector<int32_t>> withheld_bins;
};

// REQUIRES: each cell's per-aggregate vectors have one entry per aggregate of
// `query` (a normalized question). Cells are one grouping of that question,
// each key distinct; a cell key's size must equal the number of group fields
// when there are 2 or more, or every cell is withheld.
std::vector<CellVerdict> ApplyCellRules(const DisclosureParams& params,
                                        const v1::AggregateQuery& query,
                                        absl::Span<const CellStats> cells);

// Each predicate must drop the records of either no subject or at least k.
// `removed[i]` is the number of distinct owners of the records that pass
// every predicate except i and fail i, whether or not those people keep other
// records in the answer (the difference with the question without predicate i
// is exactly those records). PERMISSION_DENIED, rule predicate-removal,
// naming the predicate's field (never the count).
absl::Status CheckPredicateRemovals(const DisclosureParams& params, const v1::AggregateQuery& query,
                                    absl::Span<const int64_t> removed);

// The same rule per cell and per HISTOGRAM bin. `dropped[i]` holds, for
// predicate i, one figure per cell of the answer (and per non-empty bin of
// such a cell) into which the records that predicate drops (as above) would
// fall by their group key: the distinct owners of those records. Only cells
// and bins non-empty in the answer and with at least one dropped record are
// listed: a cell the predicate empties completely differs from the
// unfiltered answer by that whole cell, which the unfiltered question itself
// protects. Any figure of 1..k-1 -> PERMISSION_DENIED as above.
absl::Status CheckPredicateCellRemovals(const DisclosureParams& params,
                                        const v1::AggregateQuery& query,
                                        absl::Span<const std::vector<int64_t>> dropped);

}  // namespace fedshare::policy

#endif  // FEDSHARE_POLICY_DISCLOSURE_H_
