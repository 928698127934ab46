// A small strict JSON reader for JSON Lines ingest (one flat object per line)
// and the string escaping used by export. Only what fedshare needs: objects
// whose values are strings, numbers, true, false or null (RFC 8259 grammar;
// nested arrays and objects are refused).
#ifndef FEDSHARE_NODE_ENGINE_JSON_H_
#define FEDSHARE_NODE_ENGINE_JSON_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace fedshare::engine {

struct JsonScalar {
  enum class Kind { kNull, kBool, kNumber, kString };
  Kind kind = Kind::kNull;
  bool bool_value = false;
  // kNumber: the number's text as written (valid JSON number grammar).
  // kString: the decoded string (UTF-8).
  std::string text;
};

struct JsonMember {
  std::string key;
  JsonScalar value;
};

// Parses one JSON object with scalar values. Leading/trailing whitespace is
// allowed; anything else after the object is an error. INVALID_ARGUMENT says
// what is wrong and at which byte offset (for bytes that are not UTF-8: at
// which column). Duplicate keys are an error.
absl::Status ParseJsonObject(absl::string_view text, std::vector<JsonMember>* members);

struct JsonArrayMember {
  std::string key;
  std::vector<std::string> items;
};

// The same, and values that are arrays of strings go to `arrays` (in order;
// a key is still unique across both). Other arrays and objects are refused.
absl::Status ParseJsonObjectWithStringArrays(absl::string_view text,
                                             std::vector<JsonMember>* members,
                                             std::vector<JsonArrayMember>* arrays);

// True if `text` (a valid JSON number) is an integer: no fraction, no exponent.
bool JsonNumberIsInteger(absl::string_view text);

// Appends `value` as a JSON string literal: '"' and '\' escaped with a
// backslash, control characters (< 0x20) as \u00xx (lowercase hex), every
// other byte passed through.
void AppendJsonString(std::string* out, absl::string_view value);

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_JSON_H_
