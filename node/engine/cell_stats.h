// The per-cell state of a scan and what disclosure control reads off it:
// the exact aggregates, and per cell its subjects in ordinal order with each
// one's contribution (policy::CellStats). The row path (row_scan.h) fills
// CellAccumulator and finishes it with FinishCell; the block path
// (block_scan.h) fills BlockCell and finishes it with FinishBlockCell.
// Include only from the executor's files.
#ifndef FEDSHARE_NODE_ENGINE_CELL_STATS_H_
#define FEDSHARE_NODE_ENGINE_CELL_STATS_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "fedshare/v1/query.pb.h"
#include "node/engine/query_executor.h"
#include "policy/query_rules.h"

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

// Distinct subjects, counted exactly below `cap` and as `cap` from there on:
// what the predicate-removal rule needs of the owners of dropped records,
// since it asks only whether a figure is from 1 to k-1 (with cap >= k, a
// capped figure fails the rule exactly when the exact one does). Once full
// it forgets its subjects, so it holds fewer than `cap` whatever the records,
// and adding to it costs one test.
class DistinctUpTo {
 public:
  // REQUIRES: cap >= 1.
  explicit DistinctUpTo(int64_t cap) : cap_(cap) {}

  // Adds `s`; true when the set grew (a subject new to it, not yet full).
  bool Add(uint32_t s) {
    if (full_ || !seen_.insert(s).second) return false;
    if (static_cast<int64_t>(seen_.size()) >= cap_) {
      full_ = true;
      seen_ = {};
    }
    return true;
  }
  // Adds every subject of `other` (counted up to the same cap).
  void AddAll(const DistinctUpTo& other) {
    if (other.full_) {
      full_ = true;
      seen_ = {};
      return;
    }
    for (uint32_t s : other.seen_) {
      Add(s);
      if (full_) return;
    }
  }
  // The number of distinct subjects added, or `cap` if that many or more.
  int64_t count() const { return full_ ? cap_ : static_cast<int64_t>(seen_.size()); }

 private:
  int64_t cap_;
  bool full_ = false;
  absl::flat_hash_set<uint32_t> seen_;
};

// The block path's DroppedCell: the same owners, counted up to a cap.
struct DroppedUpTo {
  explicit DroppedUpTo(int64_t cap) : subjects(cap) {}
  DistinctUpTo subjects;
  std::vector<std::vector<DistinctUpTo>> bin_subjects;  // per aggregate, per bin
};

// How many measure slots a cell's records carry: fixed at compile time for
// the common questions (no measure field, or one), so that the per-record
// loops over slots unroll; counted at run time otherwise.
template <size_t N>
struct FixedSlots {
  constexpr size_t operator()() const { return N; }
};
struct RuntimeSlots {
  size_t n;
  size_t operator()() const { return n; }
};
// fn(slots) with `slots` as FixedSlots<0>, FixedSlots<1> or RuntimeSlots.
template <typename Fn>
void WithSlots(size_t slots, Fn&& fn) {
  switch (slots) {
    case 0:
      fn(FixedSlots<0>{});
      break;
    case 1:
      fn(FixedSlots<1>{});
      break;
    default:
      fn(RuntimeSlots{slots});
      break;
  }
}

// The block path's per-cell state: aggregates as the row path keeps them
// (HISTOGRAM whole; the dominance kinds filled by FinishBlockCell from
// `sums`), and the cell's subjects folded as the records arrive. Subjects
// that arrive in ascending ordinal order (the common case: one subject's
// records are adjacent, or ordinals were given in the order records came)
// extend the run with their contributions summed in place; a record whose
// subject is below the run's last one is kept whole in `tail` and folded in
// by FinishBlockCell. Every run record of a subject precedes its tail
// records, so each subject's contribution is summed in record order, as the
// row path sums it, to the last bit.
//
// A measure slot is one distinct measure field of the question's dominance
// aggregates (SUM and AVG of one field share a slot: the same sums).
struct BlockCell {
  std::vector<v1::Value> key;
  std::vector<AggregateAccumulator> aggregates;
  uint64_t record_key_sum = 0;  // with record keys
  uint32_t records = 0;         // counted records so far
  struct Sums {
    double count = 0, sum = 0, sum_squares = 0;  // sum_squares: with kSquares (Add)
  };
  std::vector<Sums> sums;  // per measure slot, over the records in order
  int64_t last = -1;       // the run's last subject, -1 before the first
  std::vector<uint32_t> run_subjects;  // ascending, distinct
  std::vector<double> run_contrib;     // run subject * slots + m: |measure| summed
  // Per tail record, 1 + slots words: the subject, then per slot the
  // measure's bits (NaN: none).
  std::vector<uint64_t> tail;

  // A counted record of `subject` with its measure per slot (NaN: none).
  // kSquares: the slots' sums of squares are kept too (VARIANCE, STDDEV).
  template <bool kSquares>
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Add(uint32_t subject, const double* values, size_t slots) {
    ++records;
    for (size_t m = 0; m < slots; ++m) {
      const double v = values[m];
      if (v != v) continue;
      sums[m].count += 1;
      sums[m].sum += v;
      if constexpr (kSquares) sums[m].sum_squares += v * v;
    }
    if (static_cast<int64_t>(subject) > last) {
      last = subject;
      run_subjects.push_back(subject);
      for (size_t m = 0; m < slots; ++m) run_contrib.push_back(Magnitude(values[m]));
    } else if (static_cast<int64_t>(subject) == last) {
      double* contrib = run_contrib.data() + run_contrib.size() - slots;
      for (size_t m = 0; m < slots; ++m) contrib[m] += Magnitude(values[m]);
    } else {
      Keep(subject, values, slots);
    }
  }
  // The same record kept whole for a later Replay, in a scan of blocks
  // that follow another scan's: its sums must be taken after those.
  void Log(uint32_t subject, const double* values, size_t slots) {
    ++records;
    Keep(subject, values, slots);
  }
  // Adds the records `from` logged, in their order; `slots_of` is a
  // FixedSlots or RuntimeSlots.
  template <bool kSquares, typename Slots>
  void Replay(const BlockCell& from, Slots slots_of) {
    const size_t slots = slots_of();
    double values[policy::kMaxAggregates];  // a slot per aggregate at most
    for (size_t i = 0; i < from.tail.size(); i += 1 + slots) {
      std::memcpy(values, &from.tail[i + 1], 8 * slots);
      Add<kSquares>(static_cast<uint32_t>(from.tail[i]), values, slots);
    }
  }

  // What a record adds to its subject's contribution: +0.0 without a
  // measure, which changes no sum of magnitudes.
  static double Magnitude(double v) { return v != v ? 0.0 : std::fabs(v); }
  void Keep(uint32_t subject, const double* values, size_t slots) {
    tail.push_back(subject);
    for (size_t m = 0; m < slots; ++m) {
      uint64_t bits;
      std::memcpy(&bits, &values[m], 8);
      tail.push_back(bits);
    }
  }
};

// Orders cells by key: null first, then by kind, then by value.
bool KeyLess(const ExecutedCell& a, const ExecutedCell& b);

// The cell's figures and per-subject statistics. Moves out of `acc`. Both
// paths total each aggregate's contributions over the subjects in ordinal
// order.
ExecutedCell FinishCell(const v1::AggregateQuery& query, CellAccumulator& acc);

// The cell's figures and per-subject statistics, the row path's for the same
// records to the last bit. `slot_of` gives each aggregate's measure slot (-1
// for aggregates without per-subject contributions). Moves out of `cell`.
ExecutedCell FinishBlockCell(const v1::AggregateQuery& query, BlockCell& cell,
                             const std::vector<int>& slot_of);

}  // namespace fedshare::engine::exec

#endif  // FEDSHARE_NODE_ENGINE_CELL_STATS_H_
