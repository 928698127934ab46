// Cell-key perturbation in the node (DESIGN §8; the method and the p-table
// format are policy/cell_key.h): each subject's record key, and the
// perturbation of an answer's released counts.
//
// A subject's record key is policy::RecordKey(node secret, its ordinal as 4
// bytes big-endian, table size). Ordinals are never reused, so the same
// people keep the same keys across questions, data versions and restarts.
// The key of a count is the sum of the record keys of the records it counts
// (a subject with three records in the cell adds its key three times); that
// of COUNT(DISTINCT subject) sums over the cell's distinct subjects. Keys
// over records, not only over people, make a filter that drops one record of
// a person who stays in the cell change the key and so the perturbation:
// two answers that differ by that record no longer give it exactly.
//
//   RecordKeys keys(engine.node_secret());
//   FEDSHARE_ASSIGN_OR_RETURN(auto k, keys.For(table.table_size(), reader.subject_count()));
//   ... ExecuteQuery(reader, query, consent, bound, *k) ...
//   PerturbCounts(table, *k, query.aggregates(a), cell, cell.stats, a, value);
#ifndef FEDSHARE_NODE_ENGINE_CELL_KEYS_H_
#define FEDSHARE_NODE_ENGINE_CELL_KEYS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "fedshare/v1/query.pb.h"
#include "fedshare/v1/types.pb.h"
#include "node/engine/query_executor.h"
#include "policy/cell_key.h"

namespace fedshare::engine {

class RecordKeys {
 public:
  explicit RecordKeys(std::string node_secret) : secret_(std::move(node_secret)) {}

  // The record keys of ordinals [0, n) for `table_size` (at least n of them),
  // computing the ones not cached yet. Thread-safe.
  absl::StatusOr<std::shared_ptr<const std::vector<uint32_t>>> For(uint32_t table_size, uint32_t n);

 private:
  const std::string secret_;
  absl::Mutex mu_;
  absl::flat_hash_map<uint32_t, std::shared_ptr<const std::vector<uint32_t>>> by_table_
      ABSL_GUARDED_BY(mu_);
};

// The agreement's p-table (Disclosure.ptable), or the default one when it
// names none. INVALID_ARGUMENT if the text does not parse (validation refuses
// such agreements first).
absl::StatusOr<policy::PTable> AgreementPTable(const v1::Disclosure& disclosure);

// Replaces the released counts in `value`, aggregate `a` (`agg`) of `cell`,
// by their perturbed figures: COUNT and COUNT(DISTINCT subject) (value and
// count), and each HISTOGRAM bin not withheld (value and count become the sum
// of the perturbed released bins). Other aggregates are left exact.
// `stats` are the cell's statistics (cell.stats, or where they were moved).
void PerturbCounts(const policy::PTable& table, absl::Span<const uint32_t> keys,
                   const v1::Aggregate& agg, const ExecutedCell& cell,
                   const policy::CellStats& stats, size_t a, v1::AggregateValue& value);

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_CELL_KEYS_H_
