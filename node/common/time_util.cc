#include "node/common/time_util.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace fedshare {

absl::StatusOr<absl::Time> ParseTimeOrDate(absl::string_view text) {
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return t;
  if (text.size() == 10 && absl::ParseTime("%Y-%m-%d", text, absl::UTCTimeZone(), &t, &err)) {
    return t;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "'", text, "' is not a time: use RFC 3339 (2026-01-31T12:00:00Z) or a date (2026-01-31)"));
}

absl::StatusOr<int32_t> ParseDateDays(absl::string_view text) {
  absl::Time t;
  std::string err;
  if (text.size() != 10 || !absl::ParseTime("%Y-%m-%d", text, absl::UTCTimeZone(), &t, &err)) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a date: use YYYY-MM-DD"));
  }
  return static_cast<int32_t>(absl::ToUnixSeconds(t) / 86400);
}

std::string FormatDateDays(int32_t days) {
  return absl::FormatTime("%Y-%m-%d", absl::FromUnixSeconds(int64_t{days} * 86400),
                          absl::UTCTimeZone());
}

std::string FormatTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

std::string FormatTimeMillis(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

}  // namespace fedshare
