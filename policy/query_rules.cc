#include "policy/query_rules.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "node/common/status_macros.h"
#include "node/common/time_util.h"
#include "policy/schema.h"

namespace fedshare::policy {
namespace {

using v1::FieldSchema;
using v1::Predicate;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("field '", field, "': ", what));
}

std::string OpName(Predicate::Op op) {
  const std::string& name = Predicate::Op_Name(op);
  return name.empty() ? absl::StrCat("OP_", static_cast<int>(op)) : name;
}

bool IsRange(Predicate::Op op) {
  return op == Predicate::LT || op == Predicate::LE || op == Predicate::GT || op == Predicate::GE ||
         op == Predicate::BETWEEN;
}

bool IsIntegral(FieldSchema::Type t) { return t == FieldSchema::INT64 || t == FieldSchema::DATE; }

absl::StatusOr<v1::Value> ConvertValue(const FieldSchema& f, const v1::Value& v) {
  v1::Value out;
  const std::string wrong =
      absl::StrCat("a value of the wrong type: ", TypeName(f.type()), " expects ");
  switch (f.type()) {
    case FieldSchema::INT64:
      if (v.has_int_value()) {
        out.set_int_value(v.int_value());
      } else if (v.has_double_value() && std::isfinite(v.double_value()) &&
                 v.double_value() == std::floor(v.double_value()) &&
                 std::fabs(v.double_value()) < 9.0e18) {
        out.set_int_value(static_cast<int64_t>(v.double_value()));
      } else {
        return Invalid(f.name(), absl::StrCat(wrong, "a whole number"));
      }
      return out;
    case FieldSchema::DATE:
      if (v.has_int_value()) {
        out.set_int_value(v.int_value());
      } else if (v.has_string_value()) {
        absl::StatusOr<int32_t> days = ParseDateDays(v.string_value());
        if (!days.ok()) return Invalid(f.name(), days.status().message());
        out.set_int_value(*days);
      } else {
        return Invalid(f.name(), absl::StrCat(wrong, "a date \"YYYY-MM-DD\""));
      }
      return out;
    case FieldSchema::DOUBLE:
      if (v.has_double_value() && std::isfinite(v.double_value())) {
        out.set_double_value(v.double_value() == 0 ? 0.0 : v.double_value());
      } else if (v.has_int_value()) {
        out.set_double_value(static_cast<double>(v.int_value()));
      } else {
        return Invalid(f.name(), absl::StrCat(wrong, "a finite number"));
      }
      return out;
    case FieldSchema::BOOL:
      if (!v.has_bool_value()) return Invalid(f.name(), absl::StrCat(wrong, "true or false"));
      out.set_bool_value(v.bool_value());
      return out;
    case FieldSchema::CATEGORY:
      if (!v.has_string_value()) return Invalid(f.name(), absl::StrCat(wrong, "a string"));
      if (f.categories_size() > 0 && std::find(f.categories().begin(), f.categories().end(),
                                               v.string_value()) == f.categories().end()) {
        return Invalid(f.name(), absl::StrCat("unknown category '", v.string_value(),
                                              "': use one of the field's declared categories"));
      }
      out.set_string_value(v.string_value());
      return out;
    default:
      return Invalid(f.name(), "the field has no usable type");
  }
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// The grid point at or below v (or v + 1 when `add_unit`, for INT64/DATE).
absl::StatusOr<v1::Value> SnapValue(const FieldSchema& f, const v1::Value& v, bool add_unit) {
  v1::Value out;
  if (IsIntegral(f.type())) {
    const int64_t g = f.granularity() >= 1 ? static_cast<int64_t>(f.granularity()) : 1;
    int64_t x = v.int_value();
    if (add_unit) {
      if (x == std::numeric_limits<int64_t>::max()) {
        return Invalid(f.name(), "range bound is too large");
      }
      ++x;
    }
    const int64_t q = FloorDiv(x, g);
    if (q > std::numeric_limits<int64_t>::max() / g ||
        q < std::numeric_limits<int64_t>::min() / g) {
      return Invalid(f.name(), "range bound is out of range");
    }
    out.set_int_value(q * g);
  } else {
    out.set_double_value(GridFloor(v.double_value(), f.granularity()));
  }
  return out;
}

absl::Status AddRange(const FieldSchema& f, Predicate::Op op, const v1::Value& v,
                      std::vector<Predicate>& out) {
  const bool add_unit = op == Predicate::LE || op == Predicate::GT;
  FEDSHARE_ASSIGN_OR_RETURN(v1::Value snapped, SnapValue(f, v, add_unit));
  Predicate p;
  p.set_field(f.name());
  p.set_op(op == Predicate::LT || op == Predicate::LE ? Predicate::LT : Predicate::GE);
  *p.add_values() = std::move(snapped);
  out.push_back(std::move(p));
  return absl::OkStatus();
}

bool HasGranularity(const FieldSchema& f) {
  return IsIntegral(f.type()) ? f.granularity() > 1 : f.granularity() > 0;
}

// A total order on typed values of one field, for canonical sorting.
std::tuple<int, int64_t, double, bool, std::string> ValueKey(const v1::Value& v) {
  return {static_cast<int>(v.kind_case()), v.int_value(), v.double_value(), v.bool_value(),
          v.string_value()};
}

bool ValueLess(const v1::Value& a, const v1::Value& b) { return ValueKey(a) < ValueKey(b); }
bool ValueEq(const v1::Value& a, const v1::Value& b) {
  return !ValueLess(a, b) && !ValueLess(b, a);
}

bool PredicateLess(const Predicate& a, const Predicate& b) {
  if (a.field() != b.field()) return a.field() < b.field();
  if (a.op() != b.op()) return a.op() < b.op();
  return std::lexicographical_compare(a.values().begin(), a.values().end(), b.values().begin(),
                                      b.values().end(), ValueLess);
}

bool PredicateEq(const Predicate& a, const Predicate& b) {
  return !PredicateLess(a, b) && !PredicateLess(b, a);
}

absl::Status NormalizePredicate(const v1::DatasetSchema& schema, const Predicate& p,
                                std::vector<Predicate>& out) {
  const FieldSchema* f = FindField(schema, p.field());
  if (f == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "filter on '", p.field(), "', which is not a field of dataset '", schema.name(), "'"));
  }
  if (f->role() == FieldSchema::PRIVATE || f->role() == FieldSchema::SUBJECT) {
    return Invalid(p.field(),
                   absl::StrCat("a ", RoleName(f->role()), " field cannot be used in a question"));
  }
  size_t want_min = 1, want_max = 1;
  switch (p.op()) {
    case Predicate::EQ:
    case Predicate::NE:
    case Predicate::LT:
    case Predicate::LE:
    case Predicate::GT:
    case Predicate::GE:
      break;
    case Predicate::IN:
      want_max = kMaxInValues;
      break;
    case Predicate::BETWEEN:
      want_min = want_max = 2;
      break;
    default:
      return Invalid(p.field(), "no operator: use =, <>, <, <=, >, >=, IN or BETWEEN");
  }
  const size_t n = static_cast<size_t>(p.values_size());
  if (n < want_min || n > want_max) {
    return Invalid(p.field(), want_min == want_max ? absl::StrCat(OpName(p.op()), " takes ",
                                                                  want_min, " value(s), not ", n)
                                                   : absl::StrCat(OpName(p.op()), " takes 1 to ",
                                                                  want_max, " values, not ", n));
  }
  std::vector<v1::Value> values;
  for (const v1::Value& v : p.values()) {
    FEDSHARE_ASSIGN_OR_RETURN(v1::Value typed, ConvertValue(*f, v));
    values.push_back(std::move(typed));
  }
  if (IsRange(p.op())) {
    if (!IsIntegral(f->type()) && f->type() != FieldSchema::DOUBLE) {
      return Invalid(p.field(), absl::StrCat("range operator ", OpName(p.op()), " on a ",
                                             TypeName(f->type()), " field: use =, <> or IN"));
    }
    if (p.op() == Predicate::BETWEEN) {
      FEDSHARE_RETURN_IF_ERROR(AddRange(*f, Predicate::GE, values[0], out));
      return AddRange(*f, Predicate::LE, values[1], out);
    }
    return AddRange(*f, p.op(), values[0], out);
  }
  if (HasGranularity(*f)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "refused by rule '", kRuleGranularity, "': field '", p.field(), "' has granularity ",
        f->granularity(), ", so it may only be filtered by ranges (<, <=, >, >=, BETWEEN)"));
  }
  std::sort(values.begin(), values.end(), ValueLess);
  values.erase(std::unique(values.begin(), values.end(), ValueEq), values.end());
  Predicate q;
  q.set_field(p.field());
  q.set_op(p.op() == Predicate::IN && values.size() == 1 ? Predicate::EQ : p.op());
  for (v1::Value& v : values) *q.add_values() = std::move(v);
  out.push_back(std::move(q));
  return absl::OkStatus();
}

absl::StatusOr<v1::Aggregate> NormalizeAggregate(const v1::DatasetSchema& schema,
                                                 const v1::Aggregate& a) {
  v1::Aggregate out;
  out.set_kind(a.kind());
  switch (a.kind()) {
    case v1::COUNT:
    case v1::COUNT_SUBJECTS:
      if (!a.field().empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            v1::AggregateKind_Name(a.kind()), " counts records or subjects and takes no field; ",
            "remove '", a.field(), "'"));
      }
      return out;
    case v1::SUM:
    case v1::AVG:
    case v1::STDDEV:
    case v1::VARIANCE:
    case v1::HISTOGRAM:
      break;
    default:
      return absl::InvalidArgumentError(
          "an aggregate has no kind: use COUNT, COUNT_SUBJECTS, SUM, AVG, STDDEV, VARIANCE or "
          "HISTOGRAM");
  }
  const std::string kind = v1::AggregateKind_Name(a.kind());
  const FieldSchema* f = FindField(schema, a.field());
  if (f == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        kind, " of '", a.field(), "', which is not a field of dataset '", schema.name(), "'"));
  }
  if (f->role() != FieldSchema::MEASURE) {
    return Invalid(a.field(), absl::StrCat(kind, " needs a MEASURE field, and this is a ",
                                           RoleName(f->role()), " field"));
  }
  out.set_field(a.field());
  if (a.kind() == v1::HISTOGRAM) {
    if (a.bins() < 1 || a.bins() > kMaxHistogramBins) {
      return Invalid(a.field(), absl::StrCat("HISTOGRAM bins ", a.bins(), " must be 1 to ",
                                             kMaxHistogramBins));
    }
    if (!std::isfinite(a.lo()) || !std::isfinite(a.hi()) || !(a.lo() < a.hi())) {
      return Invalid(a.field(), absl::StrCat("HISTOGRAM range [", a.lo(), ", ", a.hi(),
                                             ") is empty or not finite: set lo < hi"));
    }
    out.set_lo(a.lo() == 0 ? 0.0 : a.lo());
    out.set_hi(a.hi() == 0 ? 0.0 : a.hi());
    out.set_bins(a.bins());
  }
  return out;
}

}  // namespace

absl::StatusOr<v1::AggregateQuery> NormalizeQuery(const v1::DatasetSchema& schema,
                                                  const v1::AggregateQuery& query) {
  if (query.dataset() != schema.name()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the question is about dataset '", query.dataset(), "', not '", schema.name(), "'"));
  }
  if (query.purpose().empty()) {
    return absl::InvalidArgumentError("the question has no purpose: name one (PURPOSE '...')");
  }
  if (query.aggregates().empty()) {
    return absl::InvalidArgumentError("the question asks for no aggregate: add one, e.g. COUNT(*)");
  }
  if (query.aggregates_size() > kMaxAggregates) {
    return absl::InvalidArgumentError(absl::StrCat("the question asks for ",
                                                   query.aggregates_size(), " aggregates: at most ",
                                                   kMaxAggregates));
  }
  if (query.group_by_size() > kMaxGroupBy) {
    return absl::InvalidArgumentError(absl::StrCat("the question groups by ", query.group_by_size(),
                                                   " fields: at most ", kMaxGroupBy));
  }
  if (query.where_size() > kMaxPredicates) {
    return absl::InvalidArgumentError(absl::StrCat("the question has ", query.where_size(),
                                                   " filters: at most ", kMaxPredicates));
  }
  v1::AggregateQuery out;
  out.set_query_id(query.query_id());
  out.set_dataset(query.dataset());
  out.set_purpose(query.purpose());

  std::vector<Predicate> where;
  for (const Predicate& p : query.where()) {
    FEDSHARE_RETURN_IF_ERROR(NormalizePredicate(schema, p, where));
  }
  // Predicates are ANDed, so their order and repetition carry no meaning.
  std::sort(where.begin(), where.end(), PredicateLess);
  where.erase(std::unique(where.begin(), where.end(), PredicateEq), where.end());
  for (Predicate& p : where) *out.add_where() = std::move(p);

  absl::flat_hash_set<std::string> grouped;
  for (const std::string& g : query.group_by()) {
    const FieldSchema* f = FindField(schema, g);
    if (f == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "GROUP BY '", g, "', which is not a field of dataset '", schema.name(), "'"));
    }
    if (f->role() != FieldSchema::DIMENSION) {
      return Invalid(g, absl::StrCat("GROUP BY needs a DIMENSION field, and this is a ",
                                     RoleName(f->role()), " field"));
    }
    if (!grouped.insert(g).second) return Invalid(g, "grouped by twice: list it once");
    out.add_group_by(g);
  }
  for (const v1::Aggregate& a : query.aggregates()) {
    FEDSHARE_ASSIGN_OR_RETURN(*out.add_aggregates(), NormalizeAggregate(schema, a));
  }
  return out;
}

double GridWidth(const FieldSchema& field) {
  if (IsIntegral(field.type())) return field.granularity() > 1 ? field.granularity() : 0;
  if (field.type() == FieldSchema::DOUBLE) return field.granularity() > 0 ? field.granularity() : 0;
  return 0;
}

int64_t GridFloor(int64_t v, int64_t width) {
  int64_t r = v % width;
  if (r < 0) r += width;
  if (v < std::numeric_limits<int64_t>::min() + r) return v + (width - r);
  return v - r;
}

double GridFloor(double v, double width) {
  if (width <= 0) return v;
  double q = v / width;
  const double r = std::round(q);
  if (std::fabs(q - r) <= 1e-9 * std::max(1.0, std::fabs(q))) q = r;
  const double snapped = std::floor(q) * width;
  return snapped == 0 ? 0.0 : snapped;
}

int HistogramBin(const v1::Aggregate& agg, double v) {
  const double width = (agg.hi() - agg.lo()) / agg.bins();
  const double position = std::floor((v - agg.lo()) / width);
  if (!(position > 0)) return 0;  // also NaN
  if (position >= agg.bins() - 1) return agg.bins() - 1;
  return static_cast<int>(position);
}

std::string AggregateColumnName(const v1::Aggregate& aggregate) {
  switch (aggregate.kind()) {
    case v1::COUNT:
      return "count";
    case v1::COUNT_SUBJECTS:
      return "count_subjects";
    case v1::SUM:
      return absl::StrCat("sum(", aggregate.field(), ")");
    case v1::AVG:
      return absl::StrCat("avg(", aggregate.field(), ")");
    case v1::STDDEV:
      return absl::StrCat("stddev(", aggregate.field(), ")");
    case v1::VARIANCE:
      return absl::StrCat("variance(", aggregate.field(), ")");
    case v1::HISTOGRAM:
      return absl::StrCat("histogram(", aggregate.field(), ")");
    default:
      return "?";
  }
}

std::string DescribeWhere(const v1::DatasetSchema& schema,
                          const google::protobuf::RepeatedPtrField<v1::Predicate>& where) {
  // Shown in the order fields first appear, a field's lower bound before its
  // upper one ("age >= 15 AND age < 40"), as a person writes a range.
  std::vector<const v1::Predicate*> shown;
  for (const v1::Predicate& p : where) shown.push_back(&p);
  auto first_seen = [&](const std::string& field) {
    for (int i = 0; i < where.size(); ++i) {
      if (where[i].field() == field) return i;
    }
    return 0;
  };
  auto rank = [](v1::Predicate::Op op) {
    return op == v1::Predicate::GE || op == v1::Predicate::GT   ? 1
           : op == v1::Predicate::LE || op == v1::Predicate::LT ? 2
                                                                : 0;
  };
  std::stable_sort(shown.begin(), shown.end(), [&](const v1::Predicate* a, const v1::Predicate* b) {
    return std::make_pair(first_seen(a->field()), rank(a->op())) <
           std::make_pair(first_seen(b->field()), rank(b->op()));
  });
  std::vector<std::string> parts;
  for (const v1::Predicate* shown_p : shown) {
    const v1::Predicate& p = *shown_p;
    bool date = false;
    for (const v1::FieldSchema& f : schema.fields()) {
      if (f.name() == p.field()) date = f.type() == v1::FieldSchema::DATE;
    }
    auto text = [date](const v1::Value& v) -> std::string {
      switch (v.kind_case()) {
        case v1::Value::kIntValue:
          return date ? FormatDateDays(static_cast<int32_t>(v.int_value()))
                      : absl::StrCat(v.int_value());
        case v1::Value::kDoubleValue:
          return absl::StrCat(v.double_value());
        case v1::Value::kBoolValue:
          return v.bool_value() ? "true" : "false";
        case v1::Value::kStringValue:
          return absl::StrCat("'", absl::StrReplaceAll(v.string_value(), {{"'", "''"}}), "'");
        case v1::Value::KIND_NOT_SET:
          break;
      }
      return "NULL";
    };
    std::vector<std::string> values;
    for (const v1::Value& v : p.values()) values.push_back(text(v));
    const std::string first = values.empty() ? "" : values[0];
    switch (p.op()) {
      case v1::Predicate::EQ:
        parts.push_back(absl::StrCat(p.field(), " = ", first));
        break;
      case v1::Predicate::NE:
        parts.push_back(absl::StrCat(p.field(), " != ", first));
        break;
      case v1::Predicate::LT:
        parts.push_back(absl::StrCat(p.field(), " < ", first));
        break;
      case v1::Predicate::LE:
        parts.push_back(absl::StrCat(p.field(), " <= ", first));
        break;
      case v1::Predicate::GT:
        parts.push_back(absl::StrCat(p.field(), " > ", first));
        break;
      case v1::Predicate::GE:
        parts.push_back(absl::StrCat(p.field(), " >= ", first));
        break;
      case v1::Predicate::IN:
        parts.push_back(absl::StrCat(p.field(), " IN (", absl::StrJoin(values, ", "), ")"));
        break;
      case v1::Predicate::BETWEEN:
        parts.push_back(absl::StrCat(p.field(), " BETWEEN ", first, " AND ",
                                     values.size() > 1 ? values[1] : ""));
        break;
      default:
        parts.push_back(absl::StrCat(p.field(), " ?"));
    }
  }
  return absl::StrJoin(parts, " AND ");
}

}  // namespace fedshare::policy
