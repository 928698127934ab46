// Executes one normalized aggregate question over a dataset's column blocks:
// consent filter (a bitmap over subject ordinals), predicates, grouping and
// aggregation with measures clamped to their declared bounds and records per
// subject bounded. It produces the exact figures and the per-cell statistics
// that disclosure control (policy/disclosure.h) decides on; it releases
// nothing itself.
#ifndef FEDSHARE_NODE_ENGINE_QUERY_EXECUTOR_H_
#define FEDSHARE_NODE_ENGINE_QUERY_EXECUTOR_H_

#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "fedshare/v1/query.pb.h"
#include "node/engine/engine.h"
#include "policy/consent.h"
#include "policy/disclosure.h"
#include "policy/dp_mechanisms.h"

namespace fedshare::engine {

struct ExecutedCell {
  uint32_t scan_index = 0;                 // order of first sight in the scan
  std::vector<v1::Value> key;              // in group_by order; unset kind for null
  std::vector<v1::AggregateValue> values;  // exact figures, one per aggregate
  policy::CellStats stats;
  // With record keys (cell-key perturbation): the sum of the keys of the
  // counted records, and per HISTOGRAM aggregate and bin the same over the
  // records in the bin (empty for other aggregates). Reduce mod table size.
  uint64_t record_key_sum = 0;
  std::vector<std::vector<uint64_t>> bin_key_sums;
};

// GROUP BY on a field with a granularity grid (policy::GridWidth > 0) groups
// by grid bucket: the key is the bucket's lower bound, never a raw value.
struct Execution {
  Execution() = default;
  Execution(const Execution&) = default;
  Execution(Execution&&) = default;
  Execution& operator=(const Execution&) = default;
  Execution& operator=(Execution&&) = default;
  // Gives the cells' per-subject statistics to SpareBuffers
  // (question_memory.h), for the next question's.
  ~Execution();

  std::vector<ExecutedCell> cells;  // sorted by key; one cell without GROUP BY
  // Per predicate i: the distinct owners of the records that pass every other
  // predicate and fail i (whether or not they keep other records in the
  // answer), as policy::CheckPredicateRemovals takes them; counted up to
  // ExecuteQuery's `removal_cap` (a figure of at least the cap is the cap).
  std::vector<int64_t> removed_by_predicate;
  // Per predicate i: the same owners counted per cell of the answer and per
  // non-empty HISTOGRAM bin of such a cell, for each one that is non-empty in
  // the answer and receives a dropped record by its group key, as
  // policy::CheckPredicateCellRemovals takes them; counted up to the cap too.
  std::vector<std::vector<int64_t>> removed_in_cells;
  int64_t rows_scanned = 0;
  int64_t rows_counted = 0;
};

// Every record that passed consent and the predicates (and the record bound),
// for differential privacy's contribution bounding (node/engine/dp_release.h).
struct ScannedRecords {
  // refs[i].cell is the ExecutedCell::scan_index of the record's cell.
  std::vector<policy::RecordRef> refs;
  // Per record, one value per aggregate (row-major): the clamped measure, or
  // NaN when the aggregate takes no measure or the record has none.
  std::vector<double> measures;
};

// REQUIRES: `query` is the output of policy::NormalizeQuery for
// reader.schema(). `consent` covers the node's subject ordinals.
// `max_records_per_subject` of 0 means no bound. `records`, when set,
// receives every counted record. `record_keys`, when not empty, gives each
// subject ordinal's record key (node/engine/cell_keys.h); a subject past its
// end counts with key 0.
//
// The reader's scan pool (EngineOptions::scan_threads), when it has one,
// scans ranges of blocks in parallel; the answer is the same to the last bit
// as a scan on one thread. RESOURCE_EXHAUSTED (OverQuestionMemoryBudget),
// before any record is read, when the state the question could keep (its
// cells, each counted record's subject and measures, the owners of dropped
// records), bounded over every record of the dataset, passes
// EngineOptions::query_memory_budget_bytes: whether it is refused depends on
// the dataset's size, subjects and dictionaries and the question's shape,
// never on which records its filter and consent keep. And (TooManyCells)
// when its records fall into more cells than EngineOptions::max_answer_cells.
//
// `removal_cap` (at least 1; smaller counts as 1) bounds the predicate-removal
// figures: each is exact below it and the cap from there on. The rule asks
// only whether a figure is from 1 to k-1, so a cap of k (the agreement's
// min_subjects) gives its verdicts exactly, while counting keeps fewer than
// k owners per filter and cell instead of all of them. The default counts
// them all.
absl::StatusOr<Execution> ExecuteQuery(const DatasetReader& reader, const v1::AggregateQuery& query,
                                       const policy::ConsentBitmap& consent,
                                       int max_records_per_subject,
                                       ScannedRecords* records = nullptr,
                                       absl::Span<const uint32_t> record_keys = {},
                                       int64_t removal_cap = std::numeric_limits<int64_t>::max());

// What ExecuteQuery decides about memory before it reads a record, with the
// same arguments (`keeps_records` for its `records`, `subject_ordinals` for
// its consent bitmap's size, which is reader.subject_count()): its
// OverQuestionMemoryBudget refusal, or OK. For a caller that must refuse
// before spending anything on the question (a privacy-budget reservation),
// or that answers a dry run. Does not read the dataset's records; INVALID_
// ARGUMENT only as MakePlan (for a question not normalized for the reader).
absl::Status AdmitQuery(const DatasetReader& reader, const v1::AggregateQuery& query,
                        uint32_t subject_ordinals, int max_records_per_subject, bool keeps_records,
                        int64_t removal_cap = std::numeric_limits<int64_t>::max());

// RESOURCE_EXHAUSTED: the question's records fall into more than
// `max_cells` cells (limits.max_answer_cells). Says "more than", not how
// many.
absl::Status TooManyCells(int max_cells);

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_QUERY_EXECUTOR_H_
