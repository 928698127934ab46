// Renders answers for people (an aligned text table) and for programs (CSV,
// JSON).
//
//   FEDSHARE_ASSIGN_OR_RETURN(OutputFormat format, ParseOutputFormat("table"));
//   std::cout << FormatResult(result, format);
//
// Table: a header row from result.columns; keys left-aligned, numbers
// right-aligned. A column whose name starts with COUNT, or whose figures are
// all whole, prints whole numbers; other columns print 2 decimals (4
// significant digits for magnitudes below 1). HISTOGRAM cells print their bins
// as "[0,10) 3, [10,20) 0, [20,30) -", "-" for a withheld bin; the edges come
// from the question's HISTOGRAM (values outside [lo, hi) are counted in the
// end bins), or bins are labelled "bin 1", "bin 2", ... without a question. A listed withheld cell
// prints its key and "withheld (RULE)". A partial (federated) cell ends with "*" and a footnote
// says how many partners it covers. A footer lists withholdings by rule and the number of withheld
// cells not listed by key; no withheld cell's size is ever shown (the answer does not carry one).
// "as applied: ..." gives the predicates after snapping (result.applied_where_text), dates as
// dates.
//
// CSV (RFC 4180, CRLF line ends, a header row): result.columns, then
// "withheld" (the rule, empty for released cells), and for federated answers
// "partial" (true/false) and "partners". Numbers print in full precision
// (shortest text that reads back to the same double); a HISTOGRAM column is
// one CSV column per bin, named "COLUMN [lo,hi)" (or "COLUMN bin N" without
// the question), empty for a withheld bin. Comment lines
// starting with "# " come before the header: "# as applied: PREDICATES" for a
// result with predicates; for a federated answer, "# coverage: A of N partners
// answered" and one "# ORG: STATE[: reason][; as applied: PREDICATES]" line
// per partner asked. Withholding summaries are in the table and JSON forms.
//
// JSON: the message itself in protobuf's canonical JSON mapping
// (google::protobuf::util::MessageToJsonString), proto field names kept
// (snake_case), fields with default values printed, one line plus "\n". So
// 64-bit integers are JSON strings, as the mapping specifies.
//
// All functions are pure and thread-safe.
#ifndef FEDSHARE_CLIENT_FORMAT_H_
#define FEDSHARE_CLIENT_FORMAT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fedshare/v1/admin.pb.h"
#include "fedshare/v1/federation.pb.h"
#include "fedshare/v1/query.pb.h"

namespace fedshare::client {

enum class OutputFormat { kTable, kCsv, kJson };

// "table", "csv" or "json" (case-insensitive); otherwise INVALID_ARGUMENT.
absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view name);

// One node's answer (or a combined answer without its coverage). `question`,
// when given, is the question asked (for histogram bin edges).
std::string FormatResult(const v1::AggregateResult& result, OutputFormat format,
                         const v1::AggregateQuery* question = nullptr);

// Partners a federated table lists one by one unless asked for all of them.
inline constexpr int kPartnersListed = 20;

// A federated answer. Table: the coverage table, then the combined table
// (partial cells marked against the number of partners asked, i.e. the
// coverage rows), then each directly released partner answer under its org
// id. With more than kPartnersListed partners asked, and not `all_partners`,
// the coverage table lists only the partners that did not answer, a line
// counts the others, and a line says the partners' own answers are left out
// (and how to see them). CSV: the coverage comment lines, then the combined
// table. JSON: the whole response (coverage, with each partner's
// applied_where_text).
std::string FormatFederated(const v1::FederatedAggregateResponse& response, OutputFormat format,
                            const v1::AggregateQuery* question = nullptr,
                            bool all_partners = false);

// Chart: a text bar chart for a terminal. One block per value column: a line
// with the column's name, then one line per cell (its key, a bar of '#'
// scaled to the column's largest figure, up to 40 wide, and the figure); a
// partial cell's figure ends with " *", a withheld cell shows
// "withheld (RULE)" instead of a bar. A HISTOGRAM column gives one block per
// cell ("COLUMN: KEY"), one line per bin labelled by its edges, a withheld
// bin as "withheld (histogram-bin)". The footer is the table's (partial
// note, withholdings, as applied). A federated chart starts with the coverage
// line and one line per partner that did not answer, with its reason.
std::string ChartResult(const v1::AggregateResult& result,
                        const v1::AggregateQuery* question = nullptr);
std::string ChartFederated(const v1::FederatedAggregateResponse& response,
                           const v1::AggregateQuery* question = nullptr);

// The coverage table alone (org_id, state, released, withheld, reason), as a
// table or CSV; JSON gives the response's coverage list as {"coverage": [...]}.
std::string FormatCoverage(const v1::FederatedAggregateResponse& response, OutputFormat format);

// Audit entries (`fedshare audit show`). Table: one line per entry (index,
// time, decision, dataset, rule or agreement, caller), then indented lines:
// "on behalf of (unverified): ID" when the asking node named its end user,
// "question HASH16: SELECT ... PURPOSE '...'" (the question's shape: its
// predicates' values are recorded only as applied), "filters on: FIELD OP, ..."
// when the node did not apply them, "as applied: PREDICATES", and the
// reason; the last line gives the number of entries shown and the hash
// chain's state. CSV: a header row (index, time, decision, caller,
// on_behalf_of_unverified, method, dataset, purpose, question_hash (hex),
// question, applied_where, agreement_id, rule, reason) and one row per entry.
// JSON: the response itself (entries, total, chain_valid, chain_error,
// next_index), as for answers.
std::string FormatAudit(const v1::ListAuditResponse& response, OutputFormat format);

// `fedshare peers`: each peer's mode, connection, address, last contact,
// round trip (with what was timed: "probe" or "last answer"), the days its
// certificate has left, probe state and detail. A peer whose
// certificate_warning is set is marked "!" in the table, its warning is in
// the detail (table), a certificate_warning column (CSV) and the field
// (JSON: the response itself). `probed`: whether states were probed.
std::string FormatPeers(const v1::ListPeersResponse& response, OutputFormat format, bool probed,
                        absl::Time now);

}  // namespace fedshare::client

#endif  // FEDSHARE_CLIENT_FORMAT_H_
