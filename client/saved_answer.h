// Saved answers (`fedshare query --save FILE`, `fedshare show FILE`): an
// answer with its question, kept as JSON (proto/fedshare/v1/saved_answer.proto)
// so it can be shown again in any output format without asking again.
//
//   v1::SavedAnswer saved = SaveFederated(sql, question, node, response);
//   FEDSHARE_RETURN_IF_ERROR(WriteSavedAnswer(path, saved));
//   ...
//   FEDSHARE_ASSIGN_OR_RETURN(v1::SavedAnswer again, ReadSavedAnswer(path));
//   FEDSHARE_ASSIGN_OR_RETURN(std::string text, RenderAnswer(again, "csv"));
//
// `fedshare query` prints through RenderAnswer too, so `show` prints the same
// bytes the live query printed. All functions are thread-safe.
#ifndef FEDSHARE_CLIENT_SAVED_ANSWER_H_
#define FEDSHARE_CLIENT_SAVED_ANSWER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fedshare/v1/saved_answer.pb.h"

namespace fedshare::client {

inline constexpr absl::string_view kSavedAnswerFormat = "fedshare.saved-answer.v1";

// A saved answer of the given kind, stamped with the current time.
v1::SavedAnswer SaveFederated(const std::string& sql, const v1::AggregateQuery& question,
                              const std::string& node,
                              const v1::FederatedAggregateResponse& response);
v1::SavedAnswer SaveDirect(const std::string& sql, const v1::AggregateQuery& question,
                           const std::string& node, const v1::AggregateResult& result);

// Writes `saved` to `path` atomically as indented JSON.
absl::Status WriteSavedAnswer(const std::string& path, const v1::SavedAnswer& saved);

// Reads a file WriteSavedAnswer wrote. INVALID_ARGUMENT naming the file for
// text that is not such JSON, of another format, or without an answer;
// unknown fields are ignored (a newer writer's additions).
absl::StatusOr<v1::SavedAnswer> ReadSavedAnswer(const std::string& path);

// The answer in `output`: "table", "csv", "json" (client/format.h) or "chart"
// (ChartFederated/ChartResult); INVALID_ARGUMENT for another name. A
// federated table lists every partner with `all_partners`, else at most
// kPartnersListed of them (FormatFederated).
absl::StatusOr<std::string> RenderAnswer(const v1::SavedAnswer& saved, absl::string_view output,
                                         bool all_partners = false);

// OK when RenderAnswer takes `output`, else its INVALID_ARGUMENT.
absl::Status CheckRenderFormat(absl::string_view output);

}  // namespace fedshare::client

#endif  // FEDSHARE_CLIENT_SAVED_ANSWER_H_
