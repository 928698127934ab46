// ParseJsonObject on any bytes. A parsed object, written back with
// AppendJsonString for keys and string values, parses to the same members.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "node/engine/json.h"
#include "tests/fuzz/fuzz_assert.h"

using fedshare::engine::JsonMember;
using fedshare::engine::JsonScalar;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<JsonMember> members;
  if (!fedshare::engine::ParseJsonObject(text, &members).ok()) return 0;
  std::string written = "{";
  for (size_t i = 0; i < members.size(); ++i) {
    const JsonScalar& v = members[i].value;
    if (i > 0) written.push_back(',');
    fedshare::engine::AppendJsonString(&written, members[i].key);
    written.push_back(':');
    switch (v.kind) {
      case JsonScalar::Kind::kNull:
        written += "null";
        break;
      case JsonScalar::Kind::kBool:
        written += v.bool_value ? "true" : "false";
        break;
      case JsonScalar::Kind::kNumber:
        (void)fedshare::engine::JsonNumberIsInteger(v.text);
        written += v.text;
        break;
      case JsonScalar::Kind::kString:
        fedshare::engine::AppendJsonString(&written, v.text);
        break;
    }
  }
  written += "}";
  std::vector<JsonMember> again;
  absl::Status status = fedshare::engine::ParseJsonObject(written, &again);
  FEDSHARE_FUZZ_ASSERT(
      status.ok() && again.size() == members.size(),
      absl::StrCat("object did not read back: ", written, " (", status.ToString(), ")"));
  for (size_t i = 0; i < again.size(); ++i) {
    FEDSHARE_FUZZ_ASSERT(again[i].key == members[i].key &&
                             again[i].value.kind == members[i].value.kind &&
                             again[i].value.text == members[i].value.text &&
                             again[i].value.bool_value == members[i].value.bool_value,
                         absl::StrCat("member ", i, " did not read back: ", written));
  }
  return 0;
}
