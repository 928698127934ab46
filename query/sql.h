// The SQL subset of aggregate questions (DESIGN §8), and its inverse. One
// grammar for every client: the CLI parses it, and the node parses the same
// text when a FederatedAggregateRequest carries `sql`, with the same errors.
//
//   absl::StatusOr<v1::AggregateQuery> q = ParseSql(
//       "SELECT program, COUNT(*), AVG(outcome_score) FROM program_outcomes "
//       "WHERE cohort_year >= 2020 AND region IN ('north', 'south') "
//       "GROUP BY program PURPOSE 'program-evaluation'");
//
// Grammar (keywords case-insensitive; identifiers [A-Za-z_][A-Za-z0-9_]*,
// lowercased; `--` starts a comment to the end of the line):
//
//   query     := SELECT item (',' item)* FROM dataset
//                [WHERE predicate (AND predicate)*]
//                [GROUP BY field (',' field)*]
//                PURPOSE 'purpose-id' [';']
//   item      := field | aggregate
//   aggregate := COUNT(*) | COUNT(DISTINCT subject) | SUM(f) | AVG(f)
//              | STDDEV(f) | VARIANCE(f) | HISTOGRAM(f, lo, hi, bins)
//   predicate := field op literal            op: = != <> < <= > >=
//              | field IN (literal, ...)
//              | field BETWEEN literal AND literal
//   literal   := [-]integer                  -> int_value
//              | [-]decimal (1.5, 2e3)       -> double_value
//              | 'string' ('' escapes ')     -> string_value
//              | TRUE | FALSE                -> bool_value
//              | DATE 'YYYY-MM-DD'           -> string_value (the node converts)
//
// Every non-aggregate SELECT item must appear in GROUP BY and every GROUP BY
// field in SELECT; the GROUP BY order is the query's group_by order, and the
// answer's columns are the group-by fields followed by the aggregates in
// SELECT order. OR, NOT, NULL, MIN/MAX and anything after PURPOSE are refused.
// query_id is left empty for the caller to set.
//
// Thread safety: both functions are pure and may be called concurrently.
#ifndef FEDSHARE_QUERY_SQL_H_
#define FEDSHARE_QUERY_SQL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fedshare/v1/query.pb.h"

namespace fedshare {

// A syntax error's google.rpc.ErrorInfo (attached as in policy/refusal.h):
// reason kSqlSyntaxReason, domain "fedshare", metadata line and column.
inline constexpr absl::string_view kSqlSyntaxReason = "sql-syntax";
inline constexpr absl::string_view kSqlLineKey = "line";
inline constexpr absl::string_view kSqlColumnKey = "column";

// Parses `text` into a question. On bad input returns INVALID_ARGUMENT whose
// message starts "at LINE:COLUMN: " (1-based; columns count UTF-8 characters),
// says what was expected and what was found, and ends with the offending
// line of `text` and a caret under the position on two more lines; the
// status carries an ErrorInfo with the same line and column.
absl::StatusOr<v1::AggregateQuery> ParseSql(absl::string_view text);

// Returns SQL that ParseSql turns back into `query` (query_id aside). The
// round trip holds for any query ParseSql can produce; a query outside the
// subset (non-finite doubles, unset values, field names that are not
// identifiers or are reserved words) yields text that does not parse.
std::string FormatSql(const v1::AggregateQuery& query);

// The SQL text of one aggregate, e.g. "COUNT(*)", "AVG(outcome_score)",
// "HISTOGRAM(age, 0, 100, 10)". (Answers name their columns differently, as
// the node engine chooses: "count", "avg(outcome_score)", ...)
std::string AggregateSql(const v1::Aggregate& aggregate);

}  // namespace fedshare

#endif  // FEDSHARE_QUERY_SQL_H_
