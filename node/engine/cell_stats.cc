#include "node/engine/cell_stats.h"

#include <algorithm>
#include <cmath>
#include <functional>

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

ExecutedCell FinishCell(const v1::AggregateQuery& query, CellAccumulator& acc) {
  ExecutedCell cell;
  cell.key = std::move(acc.key);
  cell.record_key_sum = acc.record_key_sum;
  const int n_aggs = query.aggregates_size();
  const size_t n_subjects = acc.subject_count();
  cell.stats.subjects = static_cast<int64_t>(n_subjects);
  cell.stats.top_contributions.resize(n_aggs);
  cell.stats.abs_totals.resize(n_aggs, 0.0);
  cell.stats.bin_subjects.resize(n_aggs);
  cell.stats.bin_subject_ordinals.resize(n_aggs);
  cell.bin_key_sums.resize(n_aggs);

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
  // Both paths add contributions only to dominance aggregates, so a slot's
  // row of acc.contributions is the subject's row as it stands.
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
    const v1::Aggregate& agg = query.aggregates(a);
    AggregateAccumulator& x = acc.aggregates[a];
    v1::AggregateValue value;
    value.set_count(x.count);
    switch (agg.kind()) {
      case v1::COUNT:
        value.set_value(x.count);
        break;
      case v1::COUNT_SUBJECTS:
        value.set_value(static_cast<double>(acc.subject_count()));
        value.set_count(static_cast<double>(acc.subject_count()));
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
        for (std::vector<uint32_t>& subjects : x.bin_subjects) {
          cell.stats.bin_subjects[a].push_back(static_cast<int64_t>(SortUnique(subjects)));
          cell.stats.bin_subject_ordinals[a].push_back(std::move(subjects));
        }
        break;
      default:
        break;
    }
    if (IsDominanceKind(agg.kind())) {
      std::vector<double> contributions;
      contributions.reserve(acc.subject_count());
      for (size_t slot = 0; slot < acc.subject_count(); ++slot) {
        double c = acc.contributions[slot * n_aggs + a];
        contributions.push_back(c);
        cell.stats.abs_totals[a] += c;
      }
      size_t top = std::min<size_t>(policy::kMaxDominanceN, contributions.size());
      std::partial_sort(contributions.begin(), contributions.begin() + top, contributions.end(),
                        std::greater<double>());
      contributions.resize(top);
      cell.stats.top_contributions[a] = std::move(contributions);
    }
    cell.values.push_back(std::move(value));
  }
  return cell;
}

CellAccumulator ToAccumulator(BlockCell& cell, int n_aggs, const std::vector<int>& dominance,
                              SubjectScratch& scratch) {
  CellAccumulator acc;
  acc.key = std::move(cell.key);
  acc.aggregates = std::move(cell.aggregates);
  acc.record_key_sum = cell.record_key_sum;
  const size_t n_dom = dominance.size();
  const size_t n_records = cell.subjects.size();
  uint32_t lowest = UINT32_MAX, highest = 0;
  // Sized for one subject per record, trimmed after.
  acc.ordinals.reserve(n_records);
  acc.records.assign(n_records, 0);
  acc.contributions.assign(n_records * n_aggs, 0.0);
  for (size_t e = 0; e < n_records; ++e) {
    const uint32_t s = cell.subjects[e];
    uint32_t slot;
    if (!scratch.TestAndSet(s)) {
      slot = static_cast<uint32_t>(acc.ordinals.size());
      scratch.slot[s] = slot;
      acc.ordinals.push_back(s);
      lowest = std::min(lowest, s);
      highest = std::max(highest, s);
    } else {
      slot = scratch.slot[s];
    }
    ++acc.records[slot];
    // The sums in record order, as the row path takes them. A record without
    // a measure holds +0.0, which changes no sum (none is ever -0.0).
    for (size_t d = 0; d < n_dom; ++d) {
      const double v = cell.contributions[e * n_dom + d];
      AggregateAccumulator& x = acc.aggregates[dominance[d]];
      x.sum += v;
      x.sum_squares += v * v;
      acc.contributions[static_cast<size_t>(slot) * n_aggs + dominance[d]] += std::fabs(v);
    }
  }
  const size_t n_subjects = acc.ordinals.size();
  acc.records.resize(n_subjects);
  acc.contributions.resize(n_subjects * n_aggs);
  // Slots in ordinal order: read off the bitmap when the subjects are dense
  // in their range, else left to Finish's sort.
  if (n_subjects > 0 && (highest >> 6) - (lowest >> 6) < 8 * n_subjects) {
    acc.by_ordinal.reserve(n_subjects);
    for (uint32_t w = lowest >> 6; w <= (highest >> 6); ++w) {
      for (uint64_t bits = scratch.seen[w]; bits != 0; bits &= bits - 1) {
        const uint32_t s = (w << 6) | static_cast<uint32_t>(__builtin_ctzll(bits));
        acc.by_ordinal.push_back((static_cast<uint64_t>(s) << 32) | scratch.slot[s]);
      }
    }
  }
  for (uint32_t s : acc.ordinals) scratch.Clear(s);
  cell.subjects = {};
  cell.contributions = {};
  return acc;
}

size_t CountDistinct(const std::vector<uint32_t>& subjects, SubjectScratch& scratch) {
  size_t n = 0;
  for (uint32_t s : subjects) n += !scratch.TestAndSet(s);
  for (uint32_t s : subjects) scratch.Clear(s);
  return n;
}

// Without a per-subject record bound and without capturing records: each
// block is filtered into selection vectors (consent, then each predicate
// over its whole column), groups become compact ids, and each aggregate runs

}  // namespace fedshare::engine::exec
