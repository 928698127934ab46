// What client/format.cc, format_chart.cc and format_listings.cc share:
// numbers and key values as text, histogram bin labels, a result's shape and
// footer, partner coverage, CSV lines and protobuf JSON. Internal to the
// fedshare::format library; see client/format.h for the output these make.
#ifndef FEDSHARE_CLIENT_FORMAT_INTERNAL_H_
#define FEDSHARE_CLIENT_FORMAT_INTERNAL_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "fedshare/v1/federation.pb.h"
#include "fedshare/v1/query.pb.h"
#include "google/protobuf/message.h"

namespace fedshare::client::format_internal {

// Said under every answer whose counts were perturbed (cell keys).
inline constexpr absl::string_view kPerturbedNote =
    "counts perturbed: each count is off by a small amount fixed by the records it counts "
    "(cell-key perturbation, the agreement's p-table); sums and means are exact";

// A finite whole number small enough to print exactly without decimals.
bool IsWhole(double v);
// The shortest text that reads back to the same double.
std::string Shortest(double v);
// A key or value as text ("" when unset).
std::string ValueText(const v1::Value& v);
// A histogram bin's figure: whole, or with 2 decimals.
std::string BinCount(double v);
// Labels for `bins` histogram bins of value column `a`: "[lo,hi)" from the
// question's HISTOGRAM when known, else "bin N" (1-based).
std::vector<std::string> BinLabels(const v1::AggregateQuery* question, size_t a, int bins);
// The number of bins of each value column (0 for a column without bins).
std::vector<int> BinsPerColumn(const v1::AggregateResult& result, size_t n_values);

struct Shape {
  size_t keys = 0;
  std::vector<std::string> columns;  // keys then values, padded to fit the cells
};
// The key and value columns of `result`: its named columns, padded with
// "columnN" to fit the widest cell.
Shape ShapeOf(const v1::AggregateResult& result);

// The withholdings by rule, the number of unlisted withheld cells, the
// predicates as applied and the perturbation note: the footer of a table and
// of a chart.
std::string WithheldFooter(const v1::AggregateResult& result);

// "answered", "refused", "timed out", ...
std::string StateName(v1::PartnerCoverage::State state);
// The number of partners that answered.
int Answered(const v1::FederatedAggregateResponse& response);
// "coverage: A of N partners answered\n".
std::string CoverageLine(const v1::FederatedAggregateResponse& response);
// "as applied: ..." once when every answering partner applied the same
// predicates, else a line per distinct filter naming the partners that
// applied it (counting them past kPartnersListed); nothing without predicates.
std::string AppliedLines(const v1::FederatedAggregateResponse& response);

// `text` with its line breaks as spaces.
std::string OneLine(absl::string_view text);

// `fields` as one RFC 4180 line (quoted where needed, CRLF) appended to `out`.
void CsvLine(const std::vector<std::string>& fields, std::string* out);

// `message` in protobuf's JSON mapping, proto field names, defaults printed,
// one line plus "\n"; {"error":"..."} for a message that cannot be printed.
std::string Json(const google::protobuf::Message& message);

}  // namespace fedshare::client::format_internal

#endif  // FEDSHARE_CLIENT_FORMAT_INTERNAL_H_
