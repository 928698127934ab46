// The machine-readable part of a refusal (issue 10 item 9): which rule of
// which agreement refused, on which field, and when a limit lets the caller
// ask again. It travels inside an absl::Status as a payload (a serialized
// google.rpc.ErrorInfo under kErrorInfoTypeUrl), so every layer passes it on
// untouched, and the service edge copies it into the gRPC status details.
//
//   return WithRefusal(absl::PermissionDeniedError("..."), {"filter-field", "a1", "age"});
//   ...
//   std::optional<google::rpc::ErrorInfo> info = RefusalOf(status);
#ifndef FEDSHARE_POLICY_REFUSAL_H_
#define FEDSHARE_POLICY_REFUSAL_H_

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/rpc/error_details.pb.h"

namespace fedshare::policy {

inline constexpr absl::string_view kErrorInfoTypeUrl = "type.googleapis.com/google.rpc.ErrorInfo";
inline constexpr absl::string_view kErrorDomain = "fedshare";
// ErrorInfo metadata keys.
inline constexpr absl::string_view kMetaAgreement = "agreement";
inline constexpr absl::string_view kMetaField = "field";
inline constexpr absl::string_view kMetaRetryAfterSeconds = "retry_after_seconds";
// Differential-privacy budget refusals: ε left in the window, and what the
// question costs (decimal text).
inline constexpr absl::string_view kMetaEpsilonLeft = "epsilon_left";
inline constexpr absl::string_view kMetaEpsilonCost = "epsilon_cost";

struct RefusalInfo {
  std::string rule;       // ErrorInfo.reason
  std::string agreement;  // empty when no agreement decided (default deny)
  std::string field;      // the field the rule is about, if any
  // For limits: how long until the same call may succeed; zero for none.
  absl::Duration retry_after = absl::ZeroDuration();
};

// `status` with `info` attached; an OK status or an empty rule is returned as
// is. Header-only, so the client reads refusals without linking policy/.
inline absl::Status WithRefusal(absl::Status status, const RefusalInfo& info) {
  if (status.ok() || info.rule.empty()) return status;
  google::rpc::ErrorInfo error;
  error.set_reason(info.rule);
  error.set_domain(std::string(kErrorDomain));
  auto& metadata = *error.mutable_metadata();
  if (!info.agreement.empty()) metadata[std::string(kMetaAgreement)] = info.agreement;
  if (!info.field.empty()) metadata[std::string(kMetaField)] = info.field;
  if (info.retry_after > absl::ZeroDuration()) {
    // Whole seconds, rounded up: asking again earlier would be refused.
    const double seconds = std::ceil(absl::ToDoubleSeconds(info.retry_after));
    metadata[std::string(kMetaRetryAfterSeconds)] =
        absl::StrCat(std::max<int64_t>(1, static_cast<int64_t>(seconds)));
  }
  status.SetPayload(kErrorInfoTypeUrl, absl::Cord(error.SerializeAsString()));
  return status;
}

// The ErrorInfo attached by WithRefusal (or by the client from the gRPC
// status details), if any.
inline std::optional<google::rpc::ErrorInfo> RefusalOf(const absl::Status& status) {
  auto payload = status.GetPayload(kErrorInfoTypeUrl);  // absl::optional here
  if (!payload.has_value()) return std::nullopt;
  google::rpc::ErrorInfo error;
  if (!error.ParseFromString(std::string(*payload))) return std::nullopt;
  return error;
}

}  // namespace fedshare::policy

#endif  // FEDSHARE_POLICY_REFUSAL_H_
