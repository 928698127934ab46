// UTF-8 checks for text arriving from outside, and truncation that never
// cuts a character in two (DESIGN §13).
//
//   if (std::optional<size_t> bad = FirstInvalidUtf8(cell)) { ... column = *bad + 1 ... }
//   std::string shown = TruncateUtf8(value, 40);   // "abc…" on a character boundary
#ifndef FEDSHARE_NODE_COMMON_UTF8_H_
#define FEDSHARE_NODE_COMMON_UTF8_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace fedshare {

// The byte offset of the first byte that does not begin a well-formed UTF-8
// sequence (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF), or
// nullopt when all of `text` is valid.
std::optional<size_t> FirstInvalidUtf8(absl::string_view text);

inline bool IsValidUtf8(absl::string_view text) { return !FirstInvalidUtf8(text).has_value(); }

// Where the first invalid byte of `text` is, for a person: "column C" counted
// in characters from the start of its line (and "line L, " before it when the
// byte is not on the first line of `text`), the byte in hex, and a hint when
// the text looks like UTF-16. Empty when `text` is valid UTF-8.
std::string DescribeInvalidUtf8(absl::string_view text);

// `text` cut to at most `max_bytes` bytes on a character boundary, with "…"
// appended (within the bound) when anything was cut. Invalid bytes are
// replaced by U+FFFD first, so the result is always valid UTF-8.
std::string TruncateUtf8(absl::string_view text, size_t max_bytes);

// `text` with every invalid byte replaced by U+FFFD.
std::string SanitizeUtf8(absl::string_view text);

}  // namespace fedshare

#endif  // FEDSHARE_NODE_COMMON_UTF8_H_
