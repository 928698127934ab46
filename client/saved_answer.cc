#include "client/saved_answer.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/format.h"
#include "google/protobuf/util/json_util.h"
#include "node/common/files.h"
#include "node/common/status_macros.h"
#include "node/common/time_util.h"

namespace fedshare::client {
namespace {

v1::SavedAnswer Saved(const std::string& sql, const v1::AggregateQuery& question,
                      const std::string& node) {
  v1::SavedAnswer saved;
  saved.set_format(std::string(kSavedAnswerFormat));
  saved.set_sql(sql);
  *saved.mutable_question() = question;
  saved.set_node(node);
  saved.set_saved_at(absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone()));
  return saved;
}

}  // namespace

v1::SavedAnswer SaveFederated(const std::string& sql, const v1::AggregateQuery& question,
                              const std::string& node,
                              const v1::FederatedAggregateResponse& response) {
  v1::SavedAnswer saved = Saved(sql, question, node);
  *saved.mutable_federated() = response;
  return saved;
}

v1::SavedAnswer SaveDirect(const std::string& sql, const v1::AggregateQuery& question,
                           const std::string& node, const v1::AggregateResult& result) {
  v1::SavedAnswer saved = Saved(sql, question, node);
  *saved.mutable_direct() = result;
  return saved;
}

absl::Status WriteSavedAnswer(const std::string& path, const v1::SavedAnswer& saved) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  options.add_whitespace = true;
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(saved, &json, options);
  if (!status.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot write the answer as JSON: ", status.message().as_string()));
  }
  return WriteFileAtomic(path, json);
}

absl::StatusOr<v1::SavedAnswer> ReadSavedAnswer(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  v1::SavedAnswer saved;
  auto status = google::protobuf::util::JsonStringToMessage(*text, &saved, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a saved answer (fedshare query --save writes one): ",
                     status.message().as_string()));
  }
  if (saved.format() != kSavedAnswerFormat) {
    return absl::InvalidArgumentError(absl::StrCat(path, " has format '", saved.format(),
                                                   "'; this fedshare reads '", kSavedAnswerFormat,
                                                   "'"));
  }
  if (saved.answer_case() == v1::SavedAnswer::ANSWER_NOT_SET) {
    return absl::InvalidArgumentError(absl::StrCat(path, " holds no answer"));
  }
  return saved;
}

absl::Status CheckRenderFormat(absl::string_view output) {
  if (absl::AsciiStrToLower(output) == "chart" || ParseOutputFormat(output).ok()) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown output format '", output, "': use table, csv, json or chart"));
}

absl::StatusOr<std::string> RenderAnswer(const v1::SavedAnswer& saved, absl::string_view output,
                                         bool all_partners) {
  FEDSHARE_RETURN_IF_ERROR(CheckRenderFormat(output));
  const bool federated = saved.answer_case() == v1::SavedAnswer::kFederated;
  if (absl::AsciiStrToLower(output) == "chart") {
    return federated ? ChartFederated(saved.federated(), &saved.question())
                     : ChartResult(saved.direct(), &saved.question());
  }
  FEDSHARE_ASSIGN_OR_RETURN(OutputFormat format, ParseOutputFormat(output));
  return federated ? FormatFederated(saved.federated(), format, &saved.question(), all_partners)
                   : FormatResult(saved.direct(), format, &saved.question());
}

}  // namespace fedshare::client
