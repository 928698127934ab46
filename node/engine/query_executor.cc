#include "node/engine/query_executor.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
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
  std::vector<uint64_t> by_ordinal(n_subjects);
  for (uint32_t slot = 0; slot < n_subjects; ++slot) {
    by_ordinal[slot] = (static_cast<uint64_t>(acc.ordinals[slot]) << 32) | slot;
  }
  std::sort(by_ordinal.begin(), by_ordinal.end());
  cell.stats.subject_ordinals.reserve(n_subjects);
  cell.stats.subject_contributions.reserve(n_subjects * n_aggs);
  for (uint64_t packed : by_ordinal) {
    const uint32_t slot = static_cast<uint32_t>(packed);
    cell.stats.subject_ordinals.push_back(static_cast<uint32_t>(packed >> 32));
    for (int a = 0; a < n_aggs; ++a) {
      cell.stats.subject_contributions.push_back(
          IsDominanceKind(query.aggregates(a).kind())
              ? acc.contributions[static_cast<size_t>(slot) * n_aggs + a]
              : 0.0);
    }
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

}  // namespace

absl::StatusOr<Execution> ExecuteQuery(const DatasetReader& reader, const v1::AggregateQuery& query,
                                       const policy::ConsentBitmap& consent,
                                       int max_records_per_subject, ScannedRecords* records,
                                       absl::Span<const uint32_t> record_keys) {
  const bool keyed = !record_keys.empty();
  auto key_of = [&](uint32_t subject) -> uint64_t {
    return subject < record_keys.size() ? record_keys[subject] : 0;
  };
  const v1::DatasetSchema& schema = reader.schema();
  std::vector<CompiledPredicate> predicates;
  for (const v1::Predicate& p : query.where()) predicates.push_back(Compile(reader, p));

  std::vector<GroupField> group_fields;
  for (const std::string& name : query.group_by()) {
    for (int i = 0; i < schema.fields_size(); ++i) {
      const v1::FieldSchema& f = schema.fields(i);
      if (f.name() == name) group_fields.push_back({i, f.type(), policy::GridWidth(f)});
    }
  }
  if (group_fields.size() != static_cast<size_t>(query.group_by_size())) {
    return absl::InvalidArgumentError("GROUP BY names a field the dataset does not have");
  }

  const int n_aggs = query.aggregates_size();
  std::vector<Measure> measures(n_aggs);
  for (int a = 0; a < n_aggs; ++a) {
    const v1::Aggregate& agg = query.aggregates(a);
    if (!IsMeasureKind(agg.kind())) continue;
    for (int i = 0; i < schema.fields_size(); ++i) {
      const v1::FieldSchema& f = schema.fields(i);
      if (f.name() != agg.field()) continue;
      measures[a].field = i;
      measures[a].is_double = f.type() == v1::FieldSchema::DOUBLE;
      measures[a].clamp = f.lower() < f.upper();
      measures[a].lower = f.lower();
      measures[a].upper = f.upper();
    }
    if (measures[a].field < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("aggregate names field '", agg.field(), "' the dataset does not have"));
    }
  }

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

  absl::Status status = reader.ForEachBlock([&](const ColumnBlock& block) -> absl::Status {
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
            AppendSubject(d->second.bin_subjects[a][policy::HistogramBin(query.aggregates(a), *v)],
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
      if (max_records_per_subject > 0 && cell.records[slot] >= max_records_per_subject) continue;
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
  });
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

}  // namespace fedshare::engine
