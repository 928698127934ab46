#include "node/engine/query_executor.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "node/common/status_macros.h"
#include "node/common/time_util.h"
#include "policy/query_rules.h"
#include "policy/schema.h"

namespace fedshare::engine {
namespace {

using Type = v1::FieldSchema::Type;
using Op = v1::Predicate::Op;

bool IsDominanceKind(v1::AggregateKind kind) {
  return kind == v1::SUM || kind == v1::AVG || kind == v1::STDDEV || kind == v1::VARIANCE;
}

bool IsMeasureKind(v1::AggregateKind kind) {
  return IsDominanceKind(kind) || kind == v1::HISTOGRAM;
}

double AsDouble(const v1::Value& v) {
  switch (v.kind_case()) {
    case v1::Value::kIntValue:
      return static_cast<double>(v.int_value());
    case v1::Value::kDoubleValue:
      return v.double_value();
    case v1::Value::kBoolValue:
      return v.bool_value() ? 1.0 : 0.0;
    default:
      return 0.0;
  }
}

int64_t AsInt(const v1::Value& v) {
  switch (v.kind_case()) {
    case v1::Value::kIntValue:
      return v.int_value();
    case v1::Value::kDoubleValue:
      return static_cast<int64_t>(std::floor(v.double_value()));
    case v1::Value::kBoolValue:
      return v.bool_value() ? 1 : 0;
    default:
      return 0;
  }
}

template <typename T>
bool Compare(Op op, T x, const std::vector<T>& values) {
  switch (op) {
    case v1::Predicate::EQ:
      return x == values[0];
    case v1::Predicate::NE:
      return x != values[0];
    case v1::Predicate::LT:
      return x < values[0];
    case v1::Predicate::LE:
      return x <= values[0];
    case v1::Predicate::GT:
      return x > values[0];
    case v1::Predicate::GE:
      return x >= values[0];
    case v1::Predicate::IN:
      return std::find(values.begin(), values.end(), x) != values.end();
    case v1::Predicate::BETWEEN:
      return x >= values[0] && x <= values[1];
    default:
      return false;
  }
}

// A predicate bound to a column, with its operands in the column's encoding.
struct CompiledPredicate {
  int field = 0;
  Type type = v1::FieldSchema::TYPE_UNSPECIFIED;
  Op op = v1::Predicate::OP_UNSPECIFIED;
  std::vector<int64_t> ints;
  std::vector<double> doubles;
  std::vector<bool> category_match;  // CATEGORY: verdict per dictionary code

  bool Matches(const ColumnBlock& block, uint32_t row) const {
    const ColumnBlock::Column& col = block.columns[field];
    if (col.IsNull(row)) return false;
    switch (type) {
      case v1::FieldSchema::CATEGORY: {
        int64_t code = col.ints[row];
        return code >= 0 && static_cast<size_t>(code) < category_match.size() &&
               category_match[code];
      }
      case v1::FieldSchema::DOUBLE:
        return Compare(op, col.doubles[row], doubles);
      default:
        return Compare(op, col.ints[row], ints);
    }
  }
};

CompiledPredicate Compile(const DatasetReader& reader, const v1::Predicate& p) {
  const v1::DatasetSchema& schema = reader.schema();
  CompiledPredicate c;
  for (int i = 0; i < schema.fields_size(); ++i) {
    if (schema.fields(i).name() == p.field()) c.field = i;
  }
  c.type = schema.fields(c.field).type();
  c.op = p.op();
  if (c.type == v1::FieldSchema::CATEGORY) {
    std::vector<std::string> operands;
    for (const v1::Value& v : p.values()) operands.push_back(v.string_value());
    const std::vector<std::string>& dict = reader.dictionary(c.field);
    c.category_match.resize(dict.size());
    for (size_t code = 0; code < dict.size(); ++code) {
      c.category_match[code] = Compare(c.op, dict[code], operands);
    }
  } else if (c.type == v1::FieldSchema::DOUBLE) {
    for (const v1::Value& v : p.values()) c.doubles.push_back(AsDouble(v));
  } else {
    for (const v1::Value& v : p.values()) c.ints.push_back(AsInt(v));
  }
  return c;
}

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
void AppendSubject(std::vector<uint32_t>& subjects, uint32_t subject) {
  if (subjects.empty() || subjects.back() != subject) subjects.push_back(subject);
}

size_t SortUnique(std::vector<uint32_t>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v.size();
}

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

// A group key without allocation: up to kMaxGroupBy values as 64-bit
// patterns (codes, integers, or a double's bits) and which are null.
struct GroupKey {
  std::array<int64_t, 3> values{};
  uint8_t nulls = 0;

  bool operator==(const GroupKey& o) const { return values == o.values && nulls == o.nulls; }
  template <typename H>
  friend H AbslHashValue(H h, const GroupKey& k) {
    return H::combine(std::move(h), k.values[0], k.values[1], k.values[2], k.nulls);
  }
};

struct Measure {
  int field = -1;
  bool is_double = false;
  bool clamp = false;
  double lower = 0;
  double upper = 0;
};

// A group field: its column, and its grid when GROUP BY groups by bucket.
struct GroupField {
  int field = -1;
  v1::FieldSchema::Type type = v1::FieldSchema::TYPE_UNSPECIFIED;
  double width = 0;  // policy::GridWidth; 0 = group by value
};

v1::Value KeyValue(const DatasetReader& reader, const GroupField& g, const GroupKey& key,
                   size_t part) {
  v1::Value v;
  if (key.nulls & (1u << part)) return v;
  const int64_t bits = key.values[part];
  switch (g.type) {
    case v1::FieldSchema::CATEGORY: {
      const std::vector<std::string>& dict = reader.dictionary(g.field);
      if (bits >= 0 && static_cast<size_t>(bits) < dict.size()) v.set_string_value(dict[bits]);
      break;
    }
    case v1::FieldSchema::DOUBLE: {
      double d;
      std::memcpy(&d, &bits, 8);
      v.set_double_value(d);
      break;
    }
    case v1::FieldSchema::BOOL:
      v.set_bool_value(bits != 0);
      break;
    case v1::FieldSchema::DATE:
      v.set_string_value(FormatDateDays(static_cast<int32_t>(bits)));
      break;
    default:
      v.set_int_value(bits);
  }
  return v;
}

void SetKeyPart(GroupKey& key, size_t part, const GroupField& g, const ColumnBlock::Column& col,
                uint32_t row) {
  if (col.IsNull(row)) {
    key.nulls |= static_cast<uint8_t>(1u << part);
    return;
  }
  if (g.type == v1::FieldSchema::DOUBLE) {
    const double d = g.width > 0 ? policy::GridFloor(col.doubles[row], g.width) : col.doubles[row];
    std::memcpy(&key.values[part], &d, 8);
  } else if (g.width > 0) {
    key.values[part] = policy::GridFloor(col.ints[row], static_cast<int64_t>(g.width));
  } else {
    key.values[part] = col.ints[row];
  }
}

// Orders values: unset (null) first, then by kind, then by value.
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

bool KeyLess(const ExecutedCell& a, const ExecutedCell& b) {
  for (size_t i = 0; i < a.key.size() && i < b.key.size(); ++i) {
    if (ValueLess(a.key[i], b.key[i])) return true;
    if (ValueLess(b.key[i], a.key[i])) return false;
  }
  return false;
}

ExecutedCell Finish(const v1::AggregateQuery& query, CellAccumulator& acc) {
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

// What a question reads: its predicates, group fields and measures bound to
// columns, and which columns to decode.
struct Plan {
  std::vector<CompiledPredicate> predicates;
  std::vector<GroupField> group_fields;
  std::vector<Measure> measures;  // per aggregate; field -1 without a measure
  std::vector<bool> columns;      // per schema field: decoded
};

absl::StatusOr<Plan> MakePlan(const DatasetReader& reader, const v1::AggregateQuery& query) {
  const v1::DatasetSchema& schema = reader.schema();
  Plan plan;
  plan.columns.assign(schema.fields_size(), false);
  for (const v1::Predicate& p : query.where()) {
    plan.predicates.push_back(Compile(reader, p));
    plan.columns[plan.predicates.back().field] = true;
  }
  for (const std::string& name : query.group_by()) {
    for (int i = 0; i < schema.fields_size(); ++i) {
      const v1::FieldSchema& f = schema.fields(i);
      if (f.name() == name) {
        plan.group_fields.push_back({i, f.type(), policy::GridWidth(f)});
        plan.columns[i] = true;
      }
    }
  }
  if (plan.group_fields.size() != static_cast<size_t>(query.group_by_size())) {
    return absl::InvalidArgumentError("GROUP BY names a field the dataset does not have");
  }
  const int n_aggs = query.aggregates_size();
  plan.measures.resize(n_aggs);
  for (int a = 0; a < n_aggs; ++a) {
    const v1::Aggregate& agg = query.aggregates(a);
    if (!IsMeasureKind(agg.kind())) continue;
    Measure& m = plan.measures[a];
    for (int i = 0; i < schema.fields_size(); ++i) {
      const v1::FieldSchema& f = schema.fields(i);
      if (f.name() != agg.field()) continue;
      m.field = i;
      m.is_double = f.type() == v1::FieldSchema::DOUBLE;
      m.clamp = f.lower() < f.upper();
      m.lower = f.lower();
      m.upper = f.upper();
    }
    if (m.field < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("aggregate names field '", agg.field(), "' the dataset does not have"));
    }
    plan.columns[m.field] = true;
  }
  return plan;
}

// Row at a time, with a hash map per cell from subject to its records: the
// path for a per-subject record bound (which records count depends on scan
// order) and for capturing every counted record.
absl::StatusOr<Execution> ExecuteByRow(const DatasetReader& reader, const v1::AggregateQuery& query,
                                       const policy::ConsentBitmap& consent, const Plan& plan,
                                       int max_records_per_subject, ScannedRecords* records,
                                       absl::Span<const uint32_t> record_keys) {
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
    double v = m.is_double ? col.doubles[row] : static_cast<double>(col.ints[row]);
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
            removal_candidates[failed].insert(subject);
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
          }
          CellAccumulator& cell = cells[it->second];
          auto [slot_it, new_subject] =
              cell.slot_of.try_emplace(subject, static_cast<uint32_t>(cell.records.size()));
          const uint32_t slot = slot_it->second;
          if (new_subject) {
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
        return absl::OkStatus();
      },
      &plan.columns);
  if (!status.ok()) return status;

  for (const auto& candidates : removal_candidates) {
    execution.removed_by_predicate.push_back(static_cast<int64_t>(candidates.size()));
  }
  for (auto& by_cell : dropped) {
    std::vector<int64_t>& figures = execution.removed_in_cells.emplace_back();
    for (auto& [key, d] : by_cell) {
      auto it = cell_index.find(key);
      if (it == cell_index.end()) continue;
      const CellAccumulator& cell = cells[it->second];
      if (cell.subject_count() == 0) continue;
      if (size_t n = SortUnique(d.subjects); n > 0) figures.push_back(static_cast<int64_t>(n));
      for (int a = 0; a < n_aggs; ++a) {
        for (size_t b = 0; b < d.bin_subjects[a].size(); ++b) {
          if (cell.aggregates[a].bins[b] <= 0) continue;
          if (size_t n = SortUnique(d.bin_subjects[a][b]); n > 0) {
            figures.push_back(static_cast<int64_t>(n));
          }
        }
      }
    }
  }
  for (size_t i = 0; i < cells.size(); ++i) {
    execution.cells.push_back(Finish(query, cells[i]));
    execution.cells.back().scan_index = static_cast<uint32_t>(i);
  }
  std::sort(execution.cells.begin(), execution.cells.end(), KeyLess);
  return execution;
}

// ---- Block at a time

// Marks, for each selected row, whether it fails a predicate: fails[k] counts
// the predicates rows[k] fails, failed[k] is the last one it failed.
template <typename T, typename Pass>
void MarkFailures(const ColumnBlock::Column& col, const T* values, const uint32_t* rows, size_t n,
                  uint8_t index, Pass pass, uint8_t* fails, uint8_t* failed) {
  if (col.null_bits.empty()) {
    for (size_t k = 0; k < n; ++k) {
      const bool fail = !pass(values[rows[k]]);
      fails[k] += fail;
      failed[k] = fail ? index : failed[k];
    }
    return;
  }
  for (size_t k = 0; k < n; ++k) {
    const uint32_t r = rows[k];
    const bool fail = col.IsNull(r) || !pass(values[r]);
    fails[k] += fail;
    failed[k] = fail ? index : failed[k];
  }
}

// The same with the operator chosen once per block, not per value.
template <typename T>
void MarkByOp(Op op, const std::vector<T>& x, const ColumnBlock::Column& col, const T* values,
              const uint32_t* rows, size_t n, uint8_t index, uint8_t* fails, uint8_t* failed) {
  auto mark = [&](auto pass) { MarkFailures(col, values, rows, n, index, pass, fails, failed); };
  switch (op) {
    case v1::Predicate::EQ:
      mark([v = x[0]](T a) { return a == v; });
      break;
    case v1::Predicate::NE:
      mark([v = x[0]](T a) { return a != v; });
      break;
    case v1::Predicate::LT:
      mark([v = x[0]](T a) { return a < v; });
      break;
    case v1::Predicate::LE:
      mark([v = x[0]](T a) { return a <= v; });
      break;
    case v1::Predicate::GT:
      mark([v = x[0]](T a) { return a > v; });
      break;
    case v1::Predicate::GE:
      mark([v = x[0]](T a) { return a >= v; });
      break;
    case v1::Predicate::BETWEEN:
      mark([lo = x[0], hi = x[1]](T a) { return a >= lo && a <= hi; });
      break;
    case v1::Predicate::IN:
      mark([&x](T a) { return std::find(x.begin(), x.end(), a) != x.end(); });
      break;
    default:
      mark([](T) { return false; });
  }
}

void MarkPredicate(const CompiledPredicate& p, uint8_t index, const ColumnBlock& block,
                   const uint32_t* rows, size_t n, uint8_t* fails, uint8_t* failed) {
  const ColumnBlock::Column& col = block.columns[p.field];
  switch (p.type) {
    case v1::FieldSchema::CATEGORY: {
      const std::vector<bool>& match = p.category_match;
      MarkFailures(
          col, col.ints.data(), rows, n, index,
          [&match](int64_t code) {
            return code >= 0 && static_cast<size_t>(code) < match.size() && match[code];
          },
          fails, failed);
      break;
    }
    case v1::FieldSchema::DOUBLE:
      MarkByOp(p.op, p.doubles, col, col.doubles.data(), rows, n, index, fails, failed);
      break;
    default:
      MarkByOp(p.op, p.ints, col, col.ints.data(), rows, n, index, fails, failed);
  }
}

// Gives each group a compact id: arithmetic over the codes when every group
// field is CATEGORY or BOOL and the combinations are few (then an id indexes
// arrays directly), else an id per distinct key through a hash map.
class GroupIds {
 public:
  GroupIds(const DatasetReader& reader, const std::vector<GroupField>& fields) : fields_(fields) {
    uint64_t space = 1;
    dense_ = true;
    for (const GroupField& g : fields) {
      uint64_t values = 0;
      if (g.type == v1::FieldSchema::CATEGORY && g.width == 0) {
        values = reader.dictionary(g.field).size();
      } else if (g.type == v1::FieldSchema::BOOL && g.width == 0) {
        values = 2;
      } else {
        dense_ = false;
        break;
      }
      strides_.push_back(static_cast<uint32_t>(space));
      cards_.push_back(static_cast<int64_t>(values) + 1);  // the last one is null
      space *= values + 1;
      if (space > kMaxDenseGroups) {
        dense_ = false;
        break;
      }
    }
  }

  // ids[k] for rows[k]. DATA_LOSS for a code past its dictionary.
  absl::Status Assign(const ColumnBlock& block, const uint32_t* rows, size_t n, uint32_t* ids) {
    if (!dense_) {
      for (size_t k = 0; k < n; ++k) {
        GroupKey key;
        for (size_t g = 0; g < fields_.size(); ++g) {
          SetKeyPart(key, g, fields_[g], block.columns[fields_[g].field], rows[k]);
        }
        auto [it, fresh] = ids_.try_emplace(key, static_cast<uint32_t>(keys_.size()));
        if (fresh) keys_.push_back(key);
        ids[k] = it->second;
      }
      return absl::OkStatus();
    }
    std::fill(ids, ids + n, 0u);
    for (size_t g = 0; g < fields_.size(); ++g) {
      const ColumnBlock::Column& col = block.columns[fields_[g].field];
      const int64_t null_code = cards_[g] - 1;
      const uint32_t stride = strides_[g];
      bool bad = false;
      for (size_t k = 0; k < n; ++k) {
        const uint32_t r = rows[k];
        const int64_t v = col.IsNull(r) ? null_code : col.ints[r];
        bad |= v < 0 || v > null_code;
        ids[k] += static_cast<uint32_t>(v) * stride;
      }
      if (bad) return absl::DataLossError("a record block holds a code past its dictionary");
    }
    return absl::OkStatus();
  }

  // The key of an id Assign gave.
  GroupKey Key(uint32_t id) const {
    if (!dense_) return keys_[id];
    GroupKey key;
    for (size_t g = 0; g < fields_.size(); ++g) {
      const int64_t part = (id / strides_[g]) % cards_[g];
      if (part == cards_[g] - 1) {
        key.nulls |= static_cast<uint8_t>(1u << g);
      } else {
        key.values[g] = part;
      }
    }
    return key;
  }

 private:
  static constexpr uint64_t kMaxDenseGroups = 1 << 16;
  const std::vector<GroupField>& fields_;
  bool dense_ = false;
  std::vector<uint32_t> strides_;
  std::vector<int64_t> cards_;  // per field: values + 1 for null
  absl::flat_hash_map<GroupKey, uint32_t> ids_;
  std::vector<GroupKey> keys_;
};

// A cell while the scan runs: aggregates as the row path keeps them, and
// per counted record its subject and absolute contribution to each
// dominance aggregate, in scan order; ToAccumulator folds them per subject.
struct BlockCell {
  std::vector<v1::Value> key;
  std::vector<AggregateAccumulator> aggregates;
  std::vector<uint32_t> subjects;     // per counted record
  std::vector<double> contributions;  // record * n_dominance + d
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

// The row path's accumulator for the same records: slots in order of first
// sight, contributions summed per subject in scan order, so Finish gives the
// same figures to the last bit.
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
    for (size_t d = 0; d < n_dom; ++d) {
      acc.contributions[static_cast<size_t>(slot) * n_aggs + dominance[d]] +=
          cell.contributions[e * n_dom + d];
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

// Distinct values of `subjects` (appended with AppendSubject), counted
// through the scratch bitmap.
size_t CountDistinct(const std::vector<uint32_t>& subjects, SubjectScratch& scratch) {
  size_t n = 0;
  for (uint32_t s : subjects) n += !scratch.TestAndSet(s);
  for (uint32_t s : subjects) scratch.Clear(s);
  return n;
}

// Without a per-subject record bound and without capturing records: each
// block is filtered into selection vectors (consent, then each predicate
// over its whole column), groups become compact ids, and each aggregate runs
// over the selected rows of its column. Per-subject statistics are folded
// once per cell at the end instead of through a hash map per record.
//
//   BlockScan scan(reader, query, consent, plan, record_keys);
//   reader.ForEachBlock([&](const ColumnBlock& b) { return scan.Add(b); }, &plan.columns);
//   Execution execution = std::move(scan).Finish();
class BlockScan {
 public:
  BlockScan(const DatasetReader& reader, const v1::AggregateQuery& query,
            const policy::ConsentBitmap& consent, const Plan& plan,
            absl::Span<const uint32_t> record_keys)
      : reader_(reader),
        query_(query),
        consent_(consent),
        plan_(plan),
        record_keys_(record_keys),
        n_aggs_(query.aggregates_size()),
        group_ids_(reader, plan.group_fields),
        scratch_(consent.size()),
        removed_(plan.predicates.size(), std::vector<uint64_t>((consent.size() + 63) / 64)),
        dropped_(plan.predicates.size()) {
    dominance_index_.assign(n_aggs_, -1);
    for (int a = 0; a < n_aggs_; ++a) {
      if (!IsDominanceKind(query.aggregates(a).kind())) continue;
      dominance_index_[a] = static_cast<int>(dominance_.size());
      dominance_.push_back(a);
    }
    // Without GROUP BY the answer has its one cell even when nothing counts.
    if (plan.group_fields.empty()) CellFor(0);
  }

  absl::Status Add(const ColumnBlock& block) {
    execution_.rows_scanned += block.rows;
    Select(block);
    FEDSHARE_RETURN_IF_ERROR(
        group_ids_.Assign(block, counted_.data(), counted_.size(), gids_.data()));
    AddRecords(block);
    for (int a = 0; a < n_aggs_; ++a) Aggregate(block, a);
    if (drop_.empty()) return absl::OkStatus();
    FEDSHARE_RETURN_IF_ERROR(group_ids_.Assign(block, drop_.data(), drop_.size(), gids_.data()));
    AddDropped(block);
    return absl::OkStatus();
  }

  Execution Finish() && {
    for (const std::vector<uint64_t>& bits : removed_) {
      int64_t n = 0;
      for (uint64_t w : bits) n += __builtin_popcountll(w);
      execution_.removed_by_predicate.push_back(n);
    }
    for (std::vector<std::optional<DroppedCell>>& by_group : dropped_) {
      execution_.removed_in_cells.push_back(DroppedFigures(by_group));
    }
    for (size_t i = 0; i < cells_.size(); ++i) {
      CellAccumulator acc = ToAccumulator(cells_[i], n_aggs_, dominance_, scratch_);
      execution_.cells.push_back(engine::Finish(query_, acc));
      execution_.cells.back().scan_index = static_cast<uint32_t>(i);
    }
    std::sort(execution_.cells.begin(), execution_.cells.end(), KeyLess);
    return std::move(execution_);
  }

 private:
  uint64_t KeyOf(uint32_t subject) const {
    return subject < record_keys_.size() ? record_keys_[subject] : 0;
  }
  bool keyed() const { return !record_keys_.empty(); }

  // The cell of group `gid`, made on first sight.
  uint32_t CellFor(uint32_t gid) {
    if (gid >= cell_of_group_.size()) cell_of_group_.resize(gid + 1, -1);
    if (cell_of_group_[gid] >= 0) return static_cast<uint32_t>(cell_of_group_[gid]);
    cell_of_group_[gid] = static_cast<int32_t>(cells_.size());
    BlockCell& cell = cells_.emplace_back();
    const GroupKey key = group_ids_.Key(gid);
    for (size_t g = 0; g < plan_.group_fields.size(); ++g) {
      cell.key.push_back(KeyValue(reader_, plan_.group_fields[g], key, g));
    }
    cell.aggregates.resize(n_aggs_);
    for (int a = 0; a < n_aggs_; ++a) {
      const v1::Aggregate& agg = query_.aggregates(a);
      if (agg.kind() != v1::HISTOGRAM) continue;
      cell.aggregates[a].bins.assign(agg.bins(), 0.0);
      cell.aggregates[a].bin_subjects.resize(agg.bins());
      if (keyed()) cell.aggregates[a].bin_key_sums.assign(agg.bins(), 0);
    }
    return static_cast<uint32_t>(cell_of_group_[gid]);
  }

  // Fills counted_ (consent and every predicate pass) and drop_ with
  // drop_predicate_ (exactly one predicate fails).
  void Select(const ColumnBlock& block) {
    const uint32_t* subjects = block.subjects.data();
    selected_.resize(block.rows);
    size_t n = 0;
    for (uint32_t r = 0; r < block.rows; ++r) {
      selected_[n] = r;
      n += consent_.Test(subjects[r]);
    }
    selected_.resize(n);
    drop_.clear();
    drop_predicate_.clear();
    if (plan_.predicates.empty()) {
      counted_ = selected_;
    } else {
      fails_.assign(n, 0);
      failed_.assign(n, 0);
      for (size_t i = 0; i < plan_.predicates.size(); ++i) {
        MarkPredicate(plan_.predicates[i], static_cast<uint8_t>(i), block, selected_.data(), n,
                      fails_.data(), failed_.data());
      }
      counted_.resize(n);
      drop_.resize(n);
      drop_predicate_.resize(n);
      size_t n_counted = 0, n_drop = 0;
      for (size_t k = 0; k < n; ++k) {
        counted_[n_counted] = selected_[k];
        n_counted += fails_[k] == 0;
        drop_[n_drop] = selected_[k];
        drop_predicate_[n_drop] = failed_[k];
        n_drop += fails_[k] == 1;
      }
      counted_.resize(n_counted);
      drop_.resize(n_drop);
      drop_predicate_.resize(n_drop);
    }
    gids_.resize(std::max(counted_.size(), drop_.size()));
  }

  // Each counted record's cell (cell_ids_), its place in the cell's record
  // list (entries_), and the cells' per-record arrays grown for this block.
  void AddRecords(const ColumnBlock& block) {
    const size_t n = counted_.size();
    const size_t n_dom = dominance_.size();
    cell_ids_.resize(n);
    entries_.resize(n);
    touched_.clear();
    for (size_t k = 0; k < n; ++k) {
      const uint32_t c = CellFor(gids_[k]);
      cell_ids_[k] = c;
      BlockCell& cell = cells_[c];
      const uint32_t s = block.subjects[counted_[k]];
      entries_[k] = static_cast<uint32_t>(cell.subjects.size());
      if (n_dom > 0 && cell.subjects.size() * n_dom == cell.contributions.size()) {
        touched_.push_back(c);
      }
      cell.subjects.push_back(s);
      if (keyed()) cell.record_key_sum += KeyOf(s);
    }
    for (uint32_t c : touched_) {
      cells_[c].contributions.resize(cells_[c].subjects.size() * n_dom, 0.0);
    }
    execution_.rows_counted += static_cast<int64_t>(n);
    contributions_of_.resize(cells_.size());
    for (size_t c = 0; c < cells_.size(); ++c)
      contributions_of_[c] = cells_[c].contributions.data();
  }

  // Aggregate a over the counted records, through flat per-cell pointers.
  void Aggregate(const ColumnBlock& block, int a) {
    const v1::Aggregate& agg = query_.aggregates(a);
    const size_t n = counted_.size();
    accumulator_of_.resize(cells_.size());
    for (size_t c = 0; c < cells_.size(); ++c) accumulator_of_[c] = &cells_[c].aggregates[a];
    if (agg.kind() == v1::COUNT) {
      for (size_t k = 0; k < n; ++k) accumulator_of_[cell_ids_[k]]->count += 1;
      return;
    }
    const Measure& m = plan_.measures[a];
    if (m.field < 0) return;
    const ColumnBlock::Column& col = block.columns[m.field];
    const bool has_nulls = !col.null_bits.empty();
    auto value = [&m, &col](uint32_t r) {
      double v = m.is_double ? col.doubles[r] : static_cast<double>(col.ints[r]);
      return m.clamp ? std::clamp(v, m.lower, m.upper) : v;
    };
    if (agg.kind() == v1::HISTOGRAM) {
      for (size_t k = 0; k < n; ++k) {
        const uint32_t r = counted_[k];
        if (has_nulls && col.IsNull(r)) continue;
        AggregateAccumulator& x = *accumulator_of_[cell_ids_[k]];
        x.count += 1;
        const int bin = policy::HistogramBin(agg, value(r));
        x.bins[bin] += 1;
        AppendSubject(x.bin_subjects[bin], block.subjects[r]);
        if (keyed()) x.bin_key_sums[bin] += KeyOf(block.subjects[r]);
      }
      return;
    }
    const size_t n_dom = dominance_.size();
    const size_t d = static_cast<size_t>(dominance_index_[a]);  // every other measure
    for (size_t k = 0; k < n; ++k) {
      const uint32_t r = counted_[k];
      if (has_nulls && col.IsNull(r)) continue;
      const double v = value(r);
      AggregateAccumulator& x = *accumulator_of_[cell_ids_[k]];
      x.count += 1;
      x.sum += v;
      x.sum_squares += v * v;
      contributions_of_[cell_ids_[k]][static_cast<size_t>(entries_[k]) * n_dom + d] = std::fabs(v);
    }
  }

  // Records exactly one predicate drops: their owners per predicate, and
  // per predicate and group (and HISTOGRAM bin) for the per-cell rule.
  void AddDropped(const ColumnBlock& block) {
    for (size_t k = 0; k < drop_.size(); ++k) {
      const uint32_t r = drop_[k];
      const uint32_t s = block.subjects[r];
      const uint8_t i = drop_predicate_[k];
      removed_[i][s >> 6] |= uint64_t{1} << (s & 63);
      std::vector<std::optional<DroppedCell>>& by_group = dropped_[i];
      if (gids_[k] >= by_group.size()) by_group.resize(gids_[k] + 1);
      std::optional<DroppedCell>& d = by_group[gids_[k]];
      if (!d.has_value()) {
        d.emplace();
        d->bin_subjects.resize(n_aggs_);
        for (int a = 0; a < n_aggs_; ++a) {
          const v1::Aggregate& agg = query_.aggregates(a);
          if (agg.kind() == v1::HISTOGRAM) d->bin_subjects[a].resize(agg.bins());
        }
      }
      AppendSubject(d->subjects, s);
      for (int a = 0; a < n_aggs_; ++a) {
        const v1::Aggregate& agg = query_.aggregates(a);
        if (agg.kind() != v1::HISTOGRAM) continue;
        const Measure& m = plan_.measures[a];
        const ColumnBlock::Column& col = block.columns[m.field];
        if (col.IsNull(r)) continue;
        double v = m.is_double ? col.doubles[r] : static_cast<double>(col.ints[r]);
        if (m.clamp) v = std::clamp(v, m.lower, m.upper);
        AppendSubject(d->bin_subjects[a][policy::HistogramBin(agg, v)], s);
      }
    }
  }

  // One predicate's per-cell figures, for cells non-empty in the answer.
  std::vector<int64_t> DroppedFigures(std::vector<std::optional<DroppedCell>>& by_group) {
    std::vector<int64_t> figures;
    for (uint32_t gid = 0; gid < by_group.size(); ++gid) {
      if (!by_group[gid].has_value()) continue;
      if (gid >= cell_of_group_.size() || cell_of_group_[gid] < 0) continue;
      const BlockCell& cell = cells_[cell_of_group_[gid]];
      if (cell.subjects.empty()) continue;
      DroppedCell& d = *by_group[gid];
      if (size_t n = CountDistinct(d.subjects, scratch_); n > 0) {
        figures.push_back(static_cast<int64_t>(n));
      }
      for (int a = 0; a < n_aggs_; ++a) {
        for (size_t b = 0; b < d.bin_subjects[a].size(); ++b) {
          if (cell.aggregates[a].bins[b] <= 0) continue;
          if (size_t n = CountDistinct(d.bin_subjects[a][b], scratch_); n > 0) {
            figures.push_back(static_cast<int64_t>(n));
          }
        }
      }
    }
    return figures;
  }

  const DatasetReader& reader_;
  const v1::AggregateQuery& query_;
  const policy::ConsentBitmap& consent_;
  const Plan& plan_;
  const absl::Span<const uint32_t> record_keys_;
  const int n_aggs_;
  std::vector<int> dominance_;        // aggregates with per-subject contributions
  std::vector<int> dominance_index_;  // per aggregate: its place in dominance_, or -1
  GroupIds group_ids_;
  std::vector<BlockCell> cells_;
  std::vector<int32_t> cell_of_group_;  // group id -> cell, -1 before first sight
  SubjectScratch scratch_;
  // Per predicate: who it drops (a bitmap over ordinals), and per group id
  // the owners of the records it drops there.
  std::vector<std::vector<uint64_t>> removed_;
  std::vector<std::vector<std::optional<DroppedCell>>> dropped_;
  Execution execution_;
  // Per block, reused.
  std::vector<uint32_t> selected_, counted_, drop_, gids_, cell_ids_, entries_, touched_;
  std::vector<uint8_t> fails_, failed_, drop_predicate_;
  std::vector<double*> contributions_of_;
  std::vector<AggregateAccumulator*> accumulator_of_;
};

}  // namespace

absl::StatusOr<Execution> ExecuteQuery(const DatasetReader& reader, const v1::AggregateQuery& query,
                                       const policy::ConsentBitmap& consent,
                                       int max_records_per_subject, ScannedRecords* records,
                                       absl::Span<const uint32_t> record_keys) {
  FEDSHARE_ASSIGN_OR_RETURN(Plan plan, MakePlan(reader, query));
  if (max_records_per_subject > 0 || records != nullptr) {
    return ExecuteByRow(reader, query, consent, plan, max_records_per_subject, records,
                        record_keys);
  }
  BlockScan scan(reader, query, consent, plan, record_keys);
  FEDSHARE_RETURN_IF_ERROR(reader.ForEachBlock(
      [&scan](const ColumnBlock& block) { return scan.Add(block); }, &plan.columns));
  return std::move(scan).Finish();
}

}  // namespace fedshare::engine
