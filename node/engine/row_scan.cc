#include "node/engine/row_scan.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "node/engine/cell_stats.h"
#include "node/engine/question_memory.h"
#include "policy/query_rules.h"

namespace fedshare::engine::exec {

absl::StatusOr<Execution> ExecuteByRow(const DatasetReader& reader, const v1::AggregateQuery& query,
                                       const policy::ConsentBitmap& consent, const Plan& plan,
                                       int max_records_per_subject, ScannedRecords* records,
                                       absl::Span<const uint32_t> record_keys,
                                       int64_t memory_budget_bytes, int64_t removal_cap) {
  QuestionMemory memory(memory_budget_bytes);
  int64_t grown = 0;  // bytes kept since the last charge, roughly
  const bool keyed = !record_keys.empty();
  auto key_of = [&](uint32_t subject) -> uint64_t {
    return subject < record_keys.size() ? record_keys[subject] : 0;
  };
  const std::vector<CompiledPredicate>& predicates = plan.predicates;
  const std::vector<GroupField>& group_fields = plan.group_fields;
  const std::vector<Measure>& measures = plan.measures;
  const int n_aggs = query.aggregates_size();

  auto new_cell = [&](std::vector<v1::Value> key) {
    CellAccumulator cell;
    cell.key = std::move(key);
    cell.aggregates.resize(n_aggs);
    for (int a = 0; a < n_aggs; ++a) {
      const v1::Aggregate& agg = query.aggregates(a);
      if (agg.kind() == v1::HISTOGRAM) {
        cell.aggregates[a].bins.assign(agg.bins(), 0.0);
        cell.aggregates[a].bin_subjects.resize(agg.bins());
        if (keyed) cell.aggregates[a].bin_key_sums.assign(agg.bins(), 0);
      }
    }
    return cell;
  };

  std::vector<CellAccumulator> cells;
  absl::flat_hash_map<GroupKey, size_t> cell_index;
  if (group_fields.empty()) {
    cells.push_back(new_cell({}));
    cell_index[GroupKey()] = 0;
  }
  std::vector<absl::flat_hash_set<uint32_t>> removal_candidates(predicates.size());
  std::vector<absl::flat_hash_map<GroupKey, DroppedCell>> dropped(predicates.size());
  auto new_dropped = [&]() {
    DroppedCell d;
    d.bin_subjects.resize(n_aggs);
    for (int a = 0; a < n_aggs; ++a) {
      const v1::Aggregate& agg = query.aggregates(a);
      if (agg.kind() == v1::HISTOGRAM) d.bin_subjects[a].resize(agg.bins());
    }
    return d;
  };
  // The clamped value of aggregate a's measure in a row, if it has one.
  auto measure_value = [&](int a, const ColumnBlock& block, uint32_t row) -> std::optional<double> {
    const Measure& m = measures[a];
    if (m.field < 0) return std::nullopt;
    const ColumnBlock::Column& col = block.columns[m.field];
    if (col.IsNull(row)) return std::nullopt;
    double v = m.is_double ? col.DoubleAt(row) : static_cast<double>(col.IntAt(row));
    if (m.clamp) v = std::clamp(v, m.lower, m.upper);
    return v;
  };
  Execution execution;

  absl::Status status = reader.ForEachBlock(
      [&](const ColumnBlock& block) -> absl::Status {
        execution.rows_scanned += block.rows;
        for (uint32_t row = 0; row < block.rows; ++row) {
          const uint32_t subject = block.subjects[row];
          if (!consent.Test(subject)) continue;
          int failed = -1;
          int failures = 0;
          for (size_t i = 0; i < predicates.size() && failures < 2; ++i) {
            if (!predicates[i].Matches(block, row)) {
              ++failures;
              failed = static_cast<int>(i);
            }
          }
          if (failures > 1) continue;

          GroupKey group_key;
          for (size_t g = 0; g < group_fields.size(); ++g) {
            SetKeyPart(group_key, g, group_fields[g], block.columns[group_fields[g].field], row);
          }
          if (failures == 1) {
            grown += 4 + 16 * removal_candidates[failed].insert(subject).second;
            auto [d, fresh] = dropped[failed].try_emplace(group_key);
            if (fresh) d->second = new_dropped();
            AppendSubject(d->second.subjects, subject);
            for (int a = 0; a < n_aggs; ++a) {
              if (query.aggregates(a).kind() != v1::HISTOGRAM) continue;
              if (std::optional<double> v = measure_value(a, block, row)) {
                AppendSubject(
                    d->second.bin_subjects[a][policy::HistogramBin(query.aggregates(a), *v)],
                    subject);
              }
            }
            continue;
          }

          auto [it, inserted] = cell_index.try_emplace(group_key, cells.size());
          if (inserted) {
            std::vector<v1::Value> key;
            for (size_t g = 0; g < group_fields.size(); ++g) {
              key.push_back(KeyValue(reader, group_fields[g], group_key, g));
            }
            cells.push_back(new_cell(std::move(key)));
            grown += static_cast<int64_t>(sizeof(CellAccumulator)) + 64 * n_aggs;
          }
          CellAccumulator& cell = cells[it->second];
          auto [slot_it, new_subject] =
              cell.slot_of.try_emplace(subject, static_cast<uint32_t>(cell.records.size()));
          const uint32_t slot = slot_it->second;
          if (new_subject) {
            grown += 24 + 8 * n_aggs;
            cell.ordinals.push_back(subject);
            cell.records.push_back(0);
            cell.contributions.resize(cell.contributions.size() + n_aggs, 0.0);
          }
          if (max_records_per_subject > 0 && cell.records[slot] >= max_records_per_subject)
            continue;
          ++cell.records[slot];
          ++execution.rows_counted;
          if (keyed) cell.record_key_sum += key_of(subject);
          if (records != nullptr) {
            records->refs.push_back({subject, static_cast<uint32_t>(it->second)});
            grown += 8 + 8 * n_aggs;
            for (int a = 0; a < n_aggs; ++a) {
              records->measures.push_back(
                  measure_value(a, block, row).value_or(std::numeric_limits<double>::quiet_NaN()));
            }
          }

          for (int a = 0; a < n_aggs; ++a) {
            const v1::Aggregate& agg = query.aggregates(a);
            AggregateAccumulator& x = cell.aggregates[a];
            if (agg.kind() == v1::COUNT) {
              x.count += 1;
              continue;
            }
            std::optional<double> measured = measure_value(a, block, row);
            if (!measured) continue;
            const double v = *measured;
            x.count += 1;
            if (agg.kind() == v1::HISTOGRAM) {
              int bin = policy::HistogramBin(agg, v);
              x.bins[bin] += 1;
              AppendSubject(x.bin_subjects[bin], subject);
              if (keyed) x.bin_key_sums[bin] += key_of(subject);
              continue;
            }
            x.sum += v;
            x.sum_squares += v * v;
            cell.contributions[static_cast<size_t>(slot) * n_aggs + a] += std::fabs(v);
          }
        }
        const int64_t charge = grown;
        grown = 0;
        return memory.Charge(charge);
      },
      &plan.columns);
  if (!status.ok()) return status;

  for (const auto& candidates : removal_candidates) {
    execution.removed_by_predicate.push_back(
        std::min(static_cast<int64_t>(candidates.size()), removal_cap));
  }
  for (auto& by_cell : dropped) {
    std::vector<int64_t>& figures = execution.removed_in_cells.emplace_back();
    for (auto& [key, d] : by_cell) {
      auto it = cell_index.find(key);
      if (it == cell_index.end()) continue;
      const CellAccumulator& cell = cells[it->second];
      if (cell.subject_count() == 0) continue;
      if (size_t n = SortUnique(d.subjects); n > 0) {
        figures.push_back(std::min(static_cast<int64_t>(n), removal_cap));
      }
      for (int a = 0; a < n_aggs; ++a) {
        for (size_t b = 0; b < d.bin_subjects[a].size(); ++b) {
          if (cell.aggregates[a].bins[b] <= 0) continue;
          if (size_t n = SortUnique(d.bin_subjects[a][b]); n > 0) {
            figures.push_back(std::min(static_cast<int64_t>(n), removal_cap));
          }
        }
      }
    }
  }
  for (size_t i = 0; i < cells.size(); ++i) {
    execution.cells.push_back(FinishCell(query, cells[i]));
    execution.cells.back().scan_index = static_cast<uint32_t>(i);
  }
  std::sort(execution.cells.begin(), execution.cells.end(), KeyLess);
  return execution;
}

int64_t ByRowMemoryBound(const DatasetReader& reader, const v1::AggregateQuery& query,
                         const Plan& plan, bool keeps_records) {
  // In doubles: the terms can pass int64 for a large dataset and many groups.
  const double records = static_cast<double>(reader.rows());
  const double groups = static_cast<double>(GroupsBound(reader, plan));
  const double subjects = static_cast<double>(reader.subject_count());
  const double n_aggs = query.aggregates_size();
  const double predicates = static_cast<double>(plan.predicates.size());
  // As ExecuteByRow charges: each cell; each (cell, subject); each counted
  // record when kept; each dropped record, and its owner new to its filter's
  // set. A record is counted or dropped, so both per-record terms together
  // overstate.
  const double bound = groups * (sizeof(CellAccumulator) + 64 * n_aggs) +
                       std::min(records, subjects * groups) * (24 + 8 * n_aggs) +
                       (keeps_records ? records * (8 + 8 * n_aggs) : 0) + records * 4 +
                       16 * std::min(records, predicates * subjects);
  return bound >= 9e18 ? std::numeric_limits<int64_t>::max() : static_cast<int64_t>(bound);
}

}  // namespace fedshare::engine::exec
