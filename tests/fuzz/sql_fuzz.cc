// ParseSql on any text; a parsed question must survive FormatSql -> ParseSql
// unchanged (the round trip query/sql.h promises).
#include <cstddef>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "query/sql.h"
#include "tests/fuzz/fuzz_assert.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<fedshare::v1::AggregateQuery> query = fedshare::ParseSql(text);
  if (!query.ok()) return 0;
  std::string again = fedshare::FormatSql(*query);
  absl::StatusOr<fedshare::v1::AggregateQuery> reparsed = fedshare::ParseSql(again);
  FEDSHARE_FUZZ_ASSERT(
      reparsed.ok() && google::protobuf::util::MessageDifferencer::Equals(*query, *reparsed),
      absl::StrCat("round trip failed:\n", query->DebugString(), "\n-> ", again, "\n-> ",
                   reparsed.status().ToString()));
  return 0;
}
