// Checks a question against its dataset's schema and rewrites it into the
// normal form the engine executes (DESIGN §8, exact mode).
#ifndef FEDSHARE_POLICY_QUERY_RULES_H_
#define FEDSHARE_POLICY_QUERY_RULES_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "fedshare/v1/query.pb.h"
#include "fedshare/v1/types.pb.h"

namespace fedshare::policy {

// Bounds on a question (DESIGN §13).
inline constexpr int kMaxGroupBy = 3;
inline constexpr int kMaxAggregates = 16;
inline constexpr int kMaxPredicates = 16;
inline constexpr int kMaxInValues = 100;
inline constexpr int kMaxHistogramBins = 100;

inline constexpr absl::string_view kRuleGranularity = "granularity";

// Returns the normal form of `query`, or INVALID_ARGUMENT saying what to
// change (unknown dataset field, PRIVATE or SUBJECT field used, group-by on a
// non-DIMENSION, measure not a MEASURE, value of the wrong type or unknown
// category, wrong number of values for the operator, empty purpose, no
// aggregates, bounds above exceeded, histogram with bins < 1 or lo >= hi,
// duplicate group-by field).
//
// The normal form:
//  - every value has the field's type: INT64 and DATE (days since epoch) as
//    int_value, DOUBLE as double_value (ints accepted), BOOL as bool_value,
//    CATEGORY as string_value; DATE accepts "YYYY-MM-DD" strings;
//  - range predicates on numeric and DATE fields become half-open bounds on
//    the field's granularity grid g (INT64/DATE default 1, DOUBLE default 0 =
//    no snapping): LT v -> LT floor(v/g)*g; LE v -> LT floor((v+u)/g)*g;
//    GE v -> GE floor(v/g)*g; GT v -> GE floor((v+u)/g)*g, where u is 1 for
//    INT64/DATE and 0 for DOUBLE; BETWEEN a b -> GE a and LE b, snapped as
//    above. So "age <= 40" and "age <= 41" with g = 5 both become "age < 40".
//  - EQ, NE and IN on a field whose granularity is above 1 (above 0 for
//    DOUBLE) are refused with PERMISSION_DENIED, rule 'granularity': such a
//    field may only be filtered by ranges. Range operators on BOOL and
//    CATEGORY fields are INVALID_ARGUMENT.
//  - so that equal questions have one form: IN values are sorted and
//    deduplicated, IN with one value becomes EQ, predicates (ANDed) are
//    sorted by field, operator and values and deduplicated, and lo/hi/bins
//    are cleared on aggregates other than HISTOGRAM. group_by and aggregate
//    order are kept (they are the answer's column order); query_id is kept.
//  Filters may use DIMENSION and MEASURE fields here; which ones a peer may
//  use is the agreement's business (AgreementSet::Decide).
absl::StatusOr<v1::AggregateQuery> NormalizeQuery(const v1::DatasetSchema& schema,
                                                  const v1::AggregateQuery& query);

// The granularity grid of a field, which range filters snap to (above) and
// GROUP BY groups by: the bucket width, or 0 when the field has none (INT64
// and DATE with granularity <= 1, DOUBLE with 0, BOOL, CATEGORY). DATE widths
// are in days since 1970-01-01.
double GridWidth(const v1::FieldSchema& field);
// The grid point at or below `v`: floor(v / width) * width, for INT64 and
// DATE. When that point is below the int64 range, the next one up.
// REQUIRES: width >= 1.
int64_t GridFloor(int64_t v, int64_t width);
// The same for DOUBLE, robust to binary fractions (0.3 / 0.1 is 3); `width`
// <= 0 returns `v`.
double GridFloor(double v, double width);

// The column name of an aggregate in answers: "count", "count_subjects",
// "sum(f)", "avg(f)", "stddev(f)", "variance(f)", "histogram(f)". Every
// node and the combining node name columns alike.
// The bin of `v` in a HISTOGRAM aggregate: equal-width bins over [lo, hi),
// values below lo in the first, at or above hi in the last. Never undefined
// for a validated aggregate (bins >= 1, finite lo < hi), however narrow the
// bins: the position is clamped as a double before it becomes an int.
int HistogramBin(const v1::Aggregate& agg, double v);

std::string AggregateColumnName(const v1::Aggregate& aggregate);

// The predicates of a normalized question as people read them, ANDed:
// `age >= 15 AND age < 25 AND joined >= 2024-01-01 AND program IN ('a', 'b')`.
// DATE values print as YYYY-MM-DD, strings in single quotes (a quote doubled).
// Empty when there is no predicate.
std::string DescribeWhere(const v1::DatasetSchema& schema,
                          const google::protobuf::RepeatedPtrField<v1::Predicate>& where);

}  // namespace fedshare::policy

#endif  // FEDSHARE_POLICY_QUERY_RULES_H_
