// The cells of a differentially private answer (DESIGN §8): contribution
// bounding of the scanned records, partition selection of group keys that are
// not public, and one secure-noise release per aggregate and cell
// (policy/dp_mechanisms.h). No exact figure leaves this function: every
// number in the returned cells is noisy or derived from noisy ones.
//
//   ScannedRecords records;
//   FEDSHARE_ASSIGN_OR_RETURN(Execution e, ExecuteQuery(reader, q, consent, 0, &records));
//   FEDSHARE_ASSIGN_OR_RETURN(DpCells cells,
//       ReleaseDpCells(q, reader.schema(), e, records, settings, rng));
#ifndef FEDSHARE_NODE_ENGINE_DP_RELEASE_H_
#define FEDSHARE_NODE_ENGINE_DP_RELEASE_H_

#include <vector>

#include "absl/status/statusor.h"
#include "fedshare/v1/query.pb.h"
#include "node/engine/query_executor.h"
#include "policy/dp_random.h"
#include "policy/dp_settings.h"

namespace fedshare::engine {

// How a question's ε is used: split evenly between its aggregates and, when
// partition selection applies, the selection.
struct DpPlan {
  // GROUP BY with a field whose values are not public (or not enumerable):
  // groups pass partition selection (policy/dp_partition.h).
  bool select_partitions = false;
  // GROUP BY on public CATEGORY fields with declared values only: every
  // combination of declared values is a cell, present in the data or not.
  bool enumerate_keys = false;
  double epsilon_per_part = 0;
};

// At most this many cells are enumerated from declared values; past it, the
// keys pass partition selection instead.
inline constexpr size_t kMaxEnumeratedCells = 10000;

DpPlan PlanDp(const v1::AggregateQuery& query, const v1::DatasetSchema& schema,
              const policy::DpSettings& settings);

// The released cells, sorted by key, each with one noisy AggregateValue per
// aggregate carrying its Noise (HISTOGRAM: per bin too).
//
// Draws from `rng` in a fixed order (bounding by subject and cell, then
// selection by cell key, then values by cell key and aggregate order), so a
// seeded stream reproduces the answer exactly. REQUIRES: `execution` and
// `records` come from one ExecuteQuery of `query` with no record bound.
absl::StatusOr<std::vector<v1::Cell>> ReleaseDpCells(
    const v1::AggregateQuery& query, const v1::DatasetSchema& schema, const Execution& execution,
    const ScannedRecords& records, const policy::DpSettings& settings, policy::RandomSource& rng);

// Contribution bounding of the scanned records: one flag per record, true
// for the records kept (per subject at most L0 cells and, in each, at most
// L∞ records; policy::SelectBoundedRecords).
absl::StatusOr<std::vector<bool>> BoundRecords(const ScannedRecords& records,
                                               const policy::ContributionBounds& bounds,
                                               policy::RandomSource& rng);

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_DP_RELEASE_H_
