// Parsing and formatting of the times and dates used in configs and files.
#ifndef FEDSHARE_NODE_COMMON_TIME_UTIL_H_
#define FEDSHARE_NODE_COMMON_TIME_UTIL_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fedshare {

// Parses an RFC 3339 time ("2026-01-31T12:00:00Z") or a date ("2026-01-31",
// meaning midnight UTC). INVALID_ARGUMENT names the text on failure.
absl::StatusOr<absl::Time> ParseTimeOrDate(absl::string_view text);

// Parses "YYYY-MM-DD" into days since 1970-01-01.
absl::StatusOr<int32_t> ParseDateDays(absl::string_view text);

// Formats days since 1970-01-01 as "YYYY-MM-DD".
std::string FormatDateDays(int32_t days);

// RFC 3339 in UTC, e.g. "2026-01-31T12:00:00Z".
std::string FormatTime(absl::Time t);

// RFC 3339 in UTC with exactly three fractional digits, e.g.
// "2026-01-31T12:00:00.120Z": the same width for every time, for columns.
std::string FormatTimeMillis(absl::Time t);

}  // namespace fedshare

#endif  // FEDSHARE_NODE_COMMON_TIME_UTIL_H_
