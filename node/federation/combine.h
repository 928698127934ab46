// Combines partners' answers to one question into the federation's answer
// (DESIGN §10). Pure: messages in, a message out; no I/O, no gRPC.
//
//   std::vector<v1::AggregateResult> answers = ...;  // the partners that answered
//   v1::AggregateResult combined = CombineResults(query, answers, partners_asked);
//
// Cells are matched by key (the group-by values, compared exactly: an
// int_value 1 and a double_value 1 are different keys). Per aggregate, in
// query order:
//  - COUNT, COUNT_SUBJECTS, SUM: the values add, and so do count, sum and
//    sum_squares. COUNT_SUBJECTS adds per-partner distinct counts: subject ids
//    are pseudonyms local to each org, so a person known to two partners is
//    counted twice.
//  - AVG: Σsum / Σcount (0 when Σcount is 0).
//  - VARIANCE: the sample variance (n − 1 denominator, the definition the node
//    engine uses) from n = Σcount, s = Σsum, q = Σsum_squares:
//    max(0, (q − s²/n) / (n − 1)), and 0 when n < 2. STDDEV is its square
//    root. Both equal what one node would compute over the union of the
//    partners' (clamped) values.
//  - HISTOGRAM: bins add element-wise, as do value and count; a bin any
//    partner withheld is listed in withheld_bins and covers only the partners
//    that released it, and its cell is marked partial.
//  - Differential privacy: when any answer's figure carries Noise, the
//    combined figure's noise has the partners' variances added (for AVG,
//    VARIANCE and STDDEV each weighted by its count, then divided by Σcount²)
//    and its interval is value ± 1.96σ, a normal approximation; laplace_scale
//    and granularity stay 0. Partners' noisy counts and sums combine as above.
// REQUIRES: answers carry the sufficient statistics the engine fills (count
// for every kind; sum for SUM/AVG/STDDEV/VARIANCE; sum_squares for
// STDDEV/VARIANCE), with one AggregateValue per query aggregate per released
// cell (AnswerFits checks an answer for this). A released cell with fewer
// values is treated as having zeros.
//
// Cell flags: `partners` is the number of answers that released the key.
// `partial` is set when some answer listed the key as withheld, or when an
// answer that did not release the key withheld cells it did not list
// (unlisted_withheld_cells > 0), so its share may be missing, or when a
// histogram bin was withheld. An answer that neither released nor withheld
// anything for a key simply has no such group, and does not make it partial.
//
// A key listed as withheld by some answers and released by none stays listed
// as withheld (partners 0), with the distinct rules joined by ",". Unlisted
// withheld cells add; withholdings merge by rule (cells add, the first reason
// is kept) and are sorted by rule. Released cells come first, sorted by key
// (values ordered by kind: int, double, bool, string; then by value), then
// withheld cells, sorted the same way. Columns come from the first answer
// that has them, otherwise from the query (the engine's names: "count",
// "count_subjects", "avg(field)", ...). query_id is the query's; org_id,
// agreement_id, applied_where, receipt and answered_at are left for the
// caller (partners may snap ranges differently, so no single applied_where
// is true for all).
//
// With no answers the result has no cells. `partners_asked` does not change
// the figures; it bounds `partners` and is kept for callers that format
// "N of M" (it is not stored in the result).
#ifndef FEDSHARE_NODE_FEDERATION_COMBINE_H_
#define FEDSHARE_NODE_FEDERATION_COMBINE_H_

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "fedshare/v1/query.pb.h"

namespace fedshare::federation {

v1::AggregateResult CombineResults(const v1::AggregateQuery& query,
                                   absl::Span<const v1::AggregateResult> answers,
                                   int partners_asked);

// Whether `answer` has the shape of an answer to `query` that CombineResults
// can add up: each cell keyed by the group-by fields, each released cell
// with one value per aggregate, each figure finite (a NaN or infinity would
// turn the combined figure into one), HISTOGRAM bins no more than the
// aggregate asks for and no bins elsewhere, withheld bins among the bins,
// noise spreads finite and not negative, and counts of withheld cells not
// negative. This node's engine answers only so; a partner that sends
// anything else is broken or hostile, and its figures are left out rather
// than added (FanOut marks it FAILED). INVALID_ARGUMENT naming the first
// misfit.
absl::Status AnswerFits(const v1::AggregateQuery& query, const v1::AggregateResult& answer);

// Orders values as CombineResults sorts keys: by kind (unset, int, double,
// bool, string), then by value. Returns <0, 0 or >0.
int CompareValues(const v1::Value& a, const v1::Value& b);

}  // namespace fedshare::federation

#endif  // FEDSHARE_NODE_FEDERATION_COMBINE_H_
