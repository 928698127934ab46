// A string as a JSON string literal, for hand-written JSON (log lines, the
// dashboard's replies): quotes and backslashes escaped, \n \r \t by name,
// other control bytes as \u00XX, everything else (UTF-8 included) as is.
//
//   JsonQuote("say \"hi\"\n") == R"("say \"hi\"\n")"
#ifndef FEDSHARE_NODE_COMMON_JSON_QUOTE_H_
#define FEDSHARE_NODE_COMMON_JSON_QUOTE_H_

#include <string>

#include "absl/strings/string_view.h"

namespace fedshare {

std::string JsonQuote(absl::string_view s);

}  // namespace fedshare

#endif  // FEDSHARE_NODE_COMMON_JSON_QUOTE_H_
