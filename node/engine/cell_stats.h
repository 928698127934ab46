// The per-cell state of a scan and what disclosure control reads off it:
// the exact aggregates, and per cell its subjects in ordinal order with each
// one's contribution (policy::CellStats). The row path (row_scan.h) fills
// CellAccumulator directly; the block path (block_scan.h) fills BlockCell and
// folds it with ToAccumulator. Include only from the executor's files.
#ifndef FEDSHARE_NODE_ENGINE_CELL_STATS_H_
#define FEDSHARE_NODE_ENGINE_CELL_STATS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "fedshare/v1/query.pb.h"
#include "node/engine/query_executor.h"

namespace fedshare::engine::exec {

struct AggregateAccumulator {
  double count = 0;
  double sum = 0;
  double sum_squares = 0;
  std::vector<double> bins;
  // Per bin, the subject of each counted record, consecutive repeats
  // dropped; sorted and deduplicated by Finish.
  std::vector<std::vector<uint32_t>> bin_subjects;
  std::vector<uint64_t> bin_key_sums;  // per bin, with record keys
};

// Appends `subject` unless it is the last one appended; callers sort and
// deduplicate once at the end, so a row costs no hashing.
inline void AppendSubject(std::vector<uint32_t>& subjects, uint32_t subject) {
  if (subjects.empty() || subjects.back() != subject) subjects.push_back(subject);
}

// Sorts and deduplicates `v`; returns its new size.
size_t SortUnique(std::vector<uint32_t>& v);

// Per cell, each subject gets a slot on first sight: its record count and
// its absolute contribution to each aggregate (for dominance), kept in flat
// arrays so a row costs one hash lookup and no allocation.
struct CellAccumulator {
  std::vector<v1::Value> key;
  std::vector<AggregateAccumulator> aggregates;
  absl::flat_hash_map<uint32_t, uint32_t> slot_of;  // subject ordinal -> slot
  std::vector<uint32_t> ordinals;                   // per slot
  std::vector<int32_t> records;                     // per slot
  std::vector<double> contributions;                // slot * n_aggs + aggregate
  uint64_t record_key_sum = 0;                      // with record keys
  // Optional: (ordinal << 32 | slot) per slot, ascending; Finish sorts
  // the slots itself when empty.
  std::vector<uint64_t> by_ordinal;

  size_t subject_count() const { return records.size(); }
};

// The records one predicate alone drops that would fall in one cell: their
// owners, and per HISTOGRAM aggregate and bin the owners of those with a
// value (both with consecutive repeats dropped, as AppendSubject).
struct DroppedCell {
  std::vector<uint32_t> subjects;
  std::vector<std::vector<std::vector<uint32_t>>> bin_subjects;
};

// A cell while the scan runs: aggregates as the row path keeps them except
// the sums, and per counted record its subject and its clamped measure for
// each dominance aggregate (+0.0 without one), in scan order; ToAccumulator
// takes the sums and folds the records per subject.
struct BlockCell {
  std::vector<v1::Value> key;
  std::vector<AggregateAccumulator> aggregates;  // sum, sum_squares: 0 until folded
  std::vector<uint32_t> subjects;                // per counted record
  std::vector<double> contributions;             // record * n_dominance + d: the measure
  uint64_t record_key_sum = 0;
};

// Per-subject scratch for folding records into subjects: whether a subject
// was seen in the current cell and its slot there. Cleared by the caller
// through the subjects it set.
struct SubjectScratch {
  // `slot` is left uninitialized: it is read only for subjects set in `seen`.
  explicit SubjectScratch(uint32_t subjects)
      : seen((subjects + 63) / 64, 0), slot(new uint32_t[subjects]) {}
  bool TestAndSet(uint32_t s) {
    uint64_t& w = seen[s >> 6];
    const uint64_t bit = uint64_t{1} << (s & 63);
    const bool was = (w & bit) != 0;
    w |= bit;
    return was;
  }
  void Clear(uint32_t s) { seen[s >> 6] &= ~(uint64_t{1} << (s & 63)); }
  std::vector<uint64_t> seen;
  std::unique_ptr<uint32_t[]> slot;
};

// Orders cells by key: null first, then by kind, then by value.
bool KeyLess(const ExecutedCell& a, const ExecutedCell& b);

// The cell's figures and per-subject statistics. Moves out of `acc`.
ExecutedCell FinishCell(const v1::AggregateQuery& query, CellAccumulator& acc);

// The row path's accumulator for the same records: slots in order of first
// sight, sums and per-subject contributions taken in scan order, so
// FinishCell gives the same figures to the last bit. Moves out of `cell`; leaves `scratch`
// clear.
CellAccumulator ToAccumulator(BlockCell& cell, int n_aggs, const std::vector<int>& dominance,
                              SubjectScratch& scratch);

// Distinct values of `subjects` (appended with AppendSubject), counted
// through the scratch bitmap, which is left clear.
size_t CountDistinct(const std::vector<uint32_t>& subjects, SubjectScratch& scratch);

}  // namespace fedshare::engine::exec

#endif  // FEDSHARE_NODE_ENGINE_CELL_STATS_H_
