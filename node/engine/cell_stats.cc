#include "node/engine/cell_stats.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <utility>

#include "absl/base/optimization.h"
#include "node/engine/question_memory.h"
#include "node/engine/scan_plan.h"
#include "policy/disclosure.h"

namespace fedshare::engine::exec {
namespace {

bool ValueLess(const v1::Value& a, const v1::Value& b) {
  if (a.kind_case() != b.kind_case()) return a.kind_case() < b.kind_case();
  switch (a.kind_case()) {
    case v1::Value::kIntValue:
      return a.int_value() < b.int_value();
    case v1::Value::kDoubleValue:
      return a.double_value() < b.double_value();
    case v1::Value::kBoolValue:
      return a.bool_value() < b.bool_value();
    case v1::Value::kStringValue:
      return a.string_value() < b.string_value();
    default:
      return false;
  }
}

}  // namespace

size_t SortUnique(std::vector<uint32_t>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v.size();
}

bool KeyLess(const ExecutedCell& a, const ExecutedCell& b) {
  for (size_t i = 0; i < a.key.size() && i < b.key.size(); ++i) {
    if (ValueLess(a.key[i], b.key[i])) return true;
    if (ValueLess(b.key[i], a.key[i])) return false;
  }
  return false;
}

namespace {

// The kMaxDominanceN largest values added, descending: what a partial sort
// of them would put first. Added to once per subject and cell, so kept in a
// fixed array: a value below the smallest kept costs one comparison.
class Top {
 public:
  void Add(double v) {
    if (n_ == kN && !(v > values_[kN - 1])) return;
    int i = n_ < kN ? n_++ : kN - 1;  // the smallest kept, if full, leaves
    for (; i > 0 && v > values_[i - 1]; --i) values_[i] = values_[i - 1];
    values_[i] = v;
  }
  std::vector<double> values() const { return std::vector<double>(values_, values_ + n_); }

 private:
  static constexpr int kN = policy::kMaxDominanceN;
  double values_[kN];
  int n_ = 0;
};

// Sorts the records of `words`, `stride` words each, by the subject each
// starts with, keeping records of one subject in their order: a
// least-significant-digit radix sort, which moves each record a few times in
// sequential passes instead of gathering them at random.
template <typename Slots>
void SortBySubject(std::vector<uint64_t>& words, Slots slots) {
  const size_t stride = 1 + slots();
  const size_t n = words.size() / stride;
  if (n < 2) return;
  uint64_t highest = 0;
  for (size_t i = 0; i < words.size(); i += stride) highest = std::max(highest, words[i]);
  const int bits = 64 - __builtin_clzll(highest | 1);
  const int digit_max = n >= 4096 ? 11 : 8;  // buckets the records can fill
  const int passes = (bits + digit_max - 1) / digit_max;
  const int digit = (bits + passes - 1) / passes;
  const uint64_t mask = (uint64_t{1} << digit) - 1;
  std::vector<uint64_t> out = SpareBuffers::Get().Take<uint64_t>();
  out.resize(words.size());
  std::vector<size_t> at(size_t{1} << digit);
  for (int p = 0; p < passes; ++p) {
    const int shift = p * digit;
    std::fill(at.begin(), at.end(), 0);
    for (size_t i = 0; i < words.size(); i += stride) ++at[(words[i] >> shift) & mask];
    size_t next = 0;
    for (size_t& a : at) next += std::exchange(a, next) * stride;
    for (size_t i = 0; i < words.size(); i += stride) {
      // A record is a few words: a call to memmove each would cost more.
      uint64_t* to = out.data() + at[(words[i] >> shift) & mask];
      for (size_t w = 0; w < stride; ++w) to[w] = words[i + w];
      at[(words[i] >> shift) & mask] += stride;
    }
    words.swap(out);
  }
  SpareBuffers::Get().Give(out);
}

// The tail, sorted by subject, folded: per subject its contributions per
// slot summed from zero in record order, its record count and where its
// records start. Reused per thread, so a question faults no fresh pages.
struct FoldedTail {
  std::vector<uint32_t> subjects, records, first;
  std::vector<double> contrib;  // subject * slots + m

  template <typename Slots>
  void Fold(const std::vector<uint64_t>& tail, Slots slots_of) {
    const size_t slots = slots_of();
    const size_t stride = 1 + slots;
    // Sized for a subject per record, then cut: written through pointers,
    // as a push_back per value would reload each vector's end.
    const size_t most = tail.size() / stride;
    subjects.resize(most);
    records.resize(most);
    first.resize(most);
    contrib.resize(most * slots);
    uint32_t* subject = subjects.data();
    uint32_t* count = records.data();
    uint32_t* start = first.data();
    double* c = contrib.data();
    size_t n = 0;  // subjects so far
    for (size_t t = 0; t < tail.size(); t += stride) {
      const uint32_t s = static_cast<uint32_t>(tail[t]);
      if (n == 0 || subject[n - 1] != s) {
        subject[n] = s;
        count[n] = 0;
        start[n] = static_cast<uint32_t>(t);
        for (size_t m = 0; m < slots; ++m) c[n * slots + m] = 0.0;
        ++n;
      }
      ++count[n - 1];
      double* sc = c + (n - 1) * slots;
      for (size_t m = 0; m < slots; ++m) {
        double v;
        std::memcpy(&v, &tail[t + 1 + m], 8);
        sc[m] += BlockCell::Magnitude(v);
      }
    }
    subjects.resize(n);
    records.resize(n);
    first.resize(n);
    contrib.resize(n * slots);
  }
};

// Per measure slot, the total of the subjects' contributions in ordinal
// order (as the row path takes it) and the largest of them.
struct SlotFigures {
  void Add(const double* contrib, size_t slots) {
    for (size_t m = 0; m < slots; ++m) {
      totals[m] += contrib[m];
      tops[m].Add(contrib[m]);
    }
  }
  double totals[policy::kMaxAggregates] = {};  // a slot per aggregate at most
  Top tops[policy::kMaxAggregates];
};

// `v` where `mask` is all ones, +0 where it is zero.
inline double Masked(double v, uint64_t mask) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  bits &= mask;
  std::memcpy(&v, &bits, 8);
  return v;
}

// Merges the cell's run (ascending, distinct) with its sorted tail into
// `ordinals` and `contributions` (slots per subject; both sized for every
// run subject and tail record, and cut to the subjects here), each subject's
// contribution summed as the row path sums it: run records first, then its
// tail records in order. The two sequences interleave at random, so the
// merge picks without branching on them; only a subject in both with several tail
// records is summed again record by record (adding a folded tail to the run
// total would round differently).
template <typename Slots>
void MergeRunAndTail(const BlockCell& cell, Slots slots_of, std::vector<uint32_t>& ordinals,
                     std::vector<double>& contributions, SlotFigures& figures) {
  const size_t slots = slots_of();
  static thread_local FoldedTail folded;
  folded.Fold(cell.tail, slots_of);
  const uint32_t* run = cell.run_subjects.data();
  const uint32_t* tail_subjects = folded.subjects.data();
  const uint32_t* tail_records = folded.records.data();
  const double* rc = cell.run_contrib.data();
  const double* tc = folded.contrib.data();
  const size_t n_run = cell.run_subjects.size(), n_tail = folded.subjects.size();
  // Written through pointers: a push_back per value would reload the
  // vector's end after every store.
  uint32_t* out_ordinal = ordinals.data();
  double* out_contrib = contributions.data();
  auto emit = [&](uint32_t subject, const double* contrib) ABSL_ATTRIBUTE_ALWAYS_INLINE {
    *out_ordinal++ = subject;
    for (size_t m = 0; m < slots; ++m) *out_contrib++ = contrib[m];
    figures.Add(contrib, slots);
  };
  size_t r = 0, t = 0;
  double c[policy::kMaxAggregates];  // a slot per aggregate at most
  while (r < n_run && t < n_tail) {
    const uint32_t a = run[r], b = tail_subjects[t];
    const bool from_run = a <= b, from_tail = b <= a;
    if (ABSL_PREDICT_FALSE(from_run & from_tail & (tail_records[t] > 1))) {
      // Contributions are magnitudes (+0 or more): adding a zero is exact.
      for (size_t m = 0; m < slots; ++m) c[m] = rc[r * slots + m];
      for (size_t i = folded.first[t], k = 0; k < tail_records[t]; ++k, i += 1 + slots) {
        for (size_t m = 0; m < slots; ++m) {
          double v;
          std::memcpy(&v, &cell.tail[i + 1 + m], 8);
          c[m] += BlockCell::Magnitude(v);
        }
      }
    } else {
      // Both indices are in range: each side is read and kept or zeroed by
      // a mask, so that no branch depends on the data (a chosen pointer
      // compiles to one). Adding +0 to a magnitude is exact.
      const uint64_t keep_run = uint64_t{0} - from_run, keep_tail = uint64_t{0} - from_tail;
      for (size_t m = 0; m < slots; ++m) {
        c[m] = Masked(rc[r * slots + m], keep_run) + Masked(tc[t * slots + m], keep_tail);
      }
    }
    emit(a < b ? a : b, c);
    r += from_run;
    t += from_tail;
  }
  for (; r < n_run; ++r) emit(run[r], rc + r * slots);
  for (; t < n_tail; ++t) emit(tail_subjects[t], tc + t * slots);
  ordinals.resize(out_ordinal - ordinals.data());
  contributions.resize(out_contrib - contributions.data());
}

// The cell's subjects, ascending and distinct, into `ordinals`, with their
// contributions per slot into `contributions` and the slots' totals and
// largest contributions into `figures`.
template <typename Slots>
void FoldSubjects(BlockCell& cell, Slots slots_of, std::vector<uint32_t>& ordinals,
                  std::vector<double>& contributions, SlotFigures& figures) {
  const size_t slots = slots_of();
  if (cell.tail.empty()) {
    // The run is the answer as it stands: each subject once, ascending, with
    // its contributions per slot.
    ordinals = std::move(cell.run_subjects);
    contributions = std::move(cell.run_contrib);
    if (slots == 0) return;
    for (size_t i = 0; i < contributions.size(); i += slots) figures.Add(&contributions[i], slots);
    return;
  }
  SortBySubject(cell.tail, slots_of);
  SpareBuffers& spares = SpareBuffers::Get();
  const size_t most = cell.run_subjects.size() + cell.tail.size() / (1 + slots);
  contributions = spares.Take<double>(most * slots);
  contributions.resize(most * slots);
  ordinals = spares.Take<uint32_t>(most);
  ordinals.resize(most);
  MergeRunAndTail(cell, slots_of, ordinals, contributions, figures);
}

// A cell with its key, its per-aggregate statistics sized, and no figures.
ExecutedCell NewCell(int n_aggs, std::vector<v1::Value> key, uint64_t record_key_sum,
                     size_t subjects) {
  ExecutedCell cell;
  cell.key = std::move(key);
  cell.record_key_sum = record_key_sum;
  cell.stats.subjects = static_cast<int64_t>(subjects);
  cell.stats.top_contributions.resize(n_aggs);
  cell.stats.abs_totals.resize(n_aggs, 0.0);
  cell.stats.bin_subjects.resize(n_aggs);
  cell.stats.bin_subject_ordinals.resize(n_aggs);
  cell.bin_key_sums.resize(n_aggs);
  return cell;
}

// The figures of each aggregate, and HISTOGRAM's per-bin statistics. Moves
// out of `aggregates`.
void FinishAggregates(const v1::AggregateQuery& query,
                      std::vector<AggregateAccumulator>& aggregates, ExecutedCell& cell) {
  const double subjects = static_cast<double>(cell.stats.subjects);
  for (int a = 0; a < query.aggregates_size(); ++a) {
    const v1::Aggregate& agg = query.aggregates(a);
    AggregateAccumulator& x = aggregates[a];
    v1::AggregateValue value;
    value.set_count(x.count);
    switch (agg.kind()) {
      case v1::COUNT:
        value.set_value(x.count);
        break;
      case v1::COUNT_SUBJECTS:
        value.set_value(subjects);
        value.set_count(subjects);
        break;
      case v1::SUM:
        value.set_value(x.sum);
        value.set_sum(x.sum);
        break;
      case v1::AVG:
        value.set_value(x.count > 0 ? x.sum / x.count : 0.0);
        value.set_sum(x.sum);
        break;
      case v1::VARIANCE:
      case v1::STDDEV: {
        double variance = 0;
        if (x.count >= 2) {
          variance = std::max(0.0, (x.sum_squares - x.sum * x.sum / x.count) / (x.count - 1));
        }
        value.set_value(agg.kind() == v1::STDDEV ? std::sqrt(variance) : variance);
        value.set_sum(x.sum);
        value.set_sum_squares(x.sum_squares);
        break;
      }
      case v1::HISTOGRAM:
        value.set_value(x.count);
        for (double b : x.bins) value.add_bins(b);
        cell.bin_key_sums[a] = std::move(x.bin_key_sums);
        for (std::vector<uint32_t>& subjects_in_bin : x.bin_subjects) {
          cell.stats.bin_subjects[a].push_back(
              static_cast<int64_t>(SortUnique(subjects_in_bin)));
          cell.stats.bin_subject_ordinals[a].push_back(std::move(subjects_in_bin));
        }
        break;
      default:
        break;
    }
    cell.values.push_back(std::move(value));
  }
}

}  // namespace

ExecutedCell FinishCell(const v1::AggregateQuery& query, CellAccumulator& acc) {
  const int n_aggs = query.aggregates_size();
  const size_t n_subjects = acc.subject_count();
  ExecutedCell cell = NewCell(n_aggs, std::move(acc.key), acc.record_key_sum, n_subjects);

  // Slots are in order of first sight; the stats list subjects by ordinal.
  // Sorting (ordinal, slot) packed in one word keeps the sort contiguous.
  std::vector<uint64_t> by_ordinal = std::move(acc.by_ordinal);
  if (by_ordinal.size() != n_subjects) {
    by_ordinal.resize(n_subjects);
    for (uint32_t slot = 0; slot < n_subjects; ++slot) {
      by_ordinal[slot] = (static_cast<uint64_t>(acc.ordinals[slot]) << 32) | slot;
    }
    std::sort(by_ordinal.begin(), by_ordinal.end());
  }
  // Contributions are added only to dominance aggregates, so a slot's row of
  // acc.contributions is the subject's row as it stands.
  cell.stats.subject_ordinals.resize(n_subjects);
  cell.stats.subject_contributions.resize(n_subjects * n_aggs);
  for (size_t i = 0; i < n_subjects; ++i) {
    const uint64_t packed = by_ordinal[i];
    const size_t slot = static_cast<uint32_t>(packed);
    cell.stats.subject_ordinals[i] = static_cast<uint32_t>(packed >> 32);
    std::copy_n(acc.contributions.begin() + slot * n_aggs, n_aggs,
                cell.stats.subject_contributions.begin() + i * n_aggs);
  }
  for (int a = 0; a < n_aggs; ++a) {
    if (!IsDominanceKind(query.aggregates(a).kind())) continue;
    // The total in ordinal order, as the block path takes it.
    for (size_t i = 0; i < n_subjects; ++i) {
      cell.stats.abs_totals[a] += cell.stats.subject_contributions[i * n_aggs + a];
    }
    Top top;
    for (size_t slot = 0; slot < n_subjects; ++slot) top.Add(acc.contributions[slot * n_aggs + a]);
    cell.stats.top_contributions[a] = top.values();
  }
  FinishAggregates(query, acc.aggregates, cell);
  return cell;
}

ExecutedCell FinishBlockCell(const v1::AggregateQuery& query, BlockCell& cell,
                             const std::vector<int>& slot_of) {
  const int n_aggs = query.aggregates_size();
  const size_t slots = cell.sums.size();
  ExecutedCell out = NewCell(n_aggs, std::move(cell.key), cell.record_key_sum, 0);
  // A contribution column per measure slot: SUM and AVG of one field share
  // one value per subject.
  out.stats.contribution_column.assign(slot_of.begin(), slot_of.end());
  out.stats.contribution_columns = static_cast<int32_t>(slots);
  std::vector<uint32_t>& ordinals = out.stats.subject_ordinals;
  std::vector<double>& contributions = out.stats.subject_contributions;
  SlotFigures figures;
  WithSlots(slots, [&](auto slots_of) {
    FoldSubjects(cell, slots_of, ordinals, contributions, figures);
  });
  out.stats.subjects = static_cast<int64_t>(ordinals.size());
  for (int a = 0; a < n_aggs; ++a) {
    AggregateAccumulator& x = cell.aggregates[a];
    if (query.aggregates(a).kind() == v1::COUNT) x.count = cell.records;
    const int m = slot_of[a];
    if (m < 0) continue;
    x.count = cell.sums[m].count;
    x.sum = cell.sums[m].sum;
    x.sum_squares = cell.sums[m].sum_squares;
    out.stats.abs_totals[a] = figures.totals[m];
    out.stats.top_contributions[a] = figures.tops[m].values();
  }
  FinishAggregates(query, cell.aggregates, out);
  SpareBuffers& spares = SpareBuffers::Get();
  spares.Give(cell.tail);
  spares.Give(cell.run_subjects);
  spares.Give(cell.run_contrib);
  return out;
}

}  // namespace fedshare::engine::exec
