#include "node/engine/scan_plan.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "node/common/time_util.h"
#include "policy/query_rules.h"
#include "policy/schema.h"

namespace fedshare::engine::exec {

bool IsDominanceKind(v1::AggregateKind kind) {
  return kind == v1::SUM || kind == v1::AVG || kind == v1::STDDEV || kind == v1::VARIANCE;
}

bool IsMeasureKind(v1::AggregateKind kind) {
  return IsDominanceKind(kind) || kind == v1::HISTOGRAM;
}

namespace {

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

}  // namespace

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
    const double v = col.DoubleAt(row);
    const double d = g.width > 0 ? policy::GridFloor(v, g.width) : v;
    std::memcpy(&key.values[part], &d, 8);
  } else if (g.width > 0) {
    key.values[part] = policy::GridFloor(col.IntAt(row), static_cast<int64_t>(g.width));
  } else {
    key.values[part] = col.IntAt(row);
  }
}

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

uint64_t GroupsBound(const DatasetReader& reader, const Plan& plan) {
  const uint64_t records = std::max<uint64_t>(1, reader.rows());
  uint64_t groups = 1;
  for (const GroupField& g : plan.group_fields) {
    uint64_t values = records;
    if (g.type == v1::FieldSchema::CATEGORY && g.width == 0) {
      values = reader.dictionary(g.field).size() + 1;
    } else if (g.type == v1::FieldSchema::BOOL) {
      values = 3;
    }
    // groups * values > records, without overflow.
    if (values > records / groups) return records;
    groups *= values;
  }
  return groups;
}

}  // namespace fedshare::engine::exec
